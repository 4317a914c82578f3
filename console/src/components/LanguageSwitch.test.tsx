import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import i18n from "../i18n";
import { en } from "../i18n/en";
import { zhCN } from "../i18n/zh-CN";
import { renderWith } from "../test/render";
import { Layout } from "./Layout";

function keys(o: object, prefix = ""): string[] {
  return Object.entries(o).flatMap(([k, v]) => (typeof v === "string" ? [prefix + k] : keys(v, `${prefix}${k}.`)));
}

test("English and Simplified Chinese have the same keys, none empty", () => {
  expect(keys(zhCN).sort()).toEqual(keys(en).sort());
  expect(keys(zhCN).filter((k) => !k)).toEqual([]);
});

test("switching to Chinese translates the navigation and sets the page language", async () => {
  await i18n.changeLanguage("en");
  renderWith(<Layout />);
  expect(screen.getByRole("link", { name: "Incidents" })).toBeInTheDocument();
  await userEvent.selectOptions(screen.getByLabelText("Language"), "zh-CN");
  expect(await screen.findByRole("link", { name: "事件" })).toBeInTheDocument();
  expect(document.documentElement.lang).toBe("zh-CN");
  await i18n.changeLanguage("en");
});
