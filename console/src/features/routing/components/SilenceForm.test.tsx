import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { renderWith } from "../../../test/render";
import { SilenceForm } from "./SilenceForm";

test("matchers come prefilled from the incident; preview and create send them one per line", async () => {
  const previews: string[][] = [];
  const created: unknown[] = [];
  renderWith(
    <SilenceForm
      initialMatchers={['alertname="KubePodCrashLooping"', 'namespace="shop"']}
      onPreview={(m) => previews.push(m)}
      onCreate={(s) => created.push(s)}
    />,
  );
  expect(screen.getByLabelText("Matchers")).toHaveValue('alertname="KubePodCrashLooping"\nnamespace="shop"');
  const create = screen.getByRole("button", { name: "Create silence" });
  expect(create).toBeDisabled(); // a silence says why
  await userEvent.click(screen.getByRole("button", { name: "Preview" }));
  expect(previews).toEqual([['alertname="KubePodCrashLooping"', 'namespace="shop"']]);
  await userEvent.type(screen.getByLabelText("Comment"), "deploying a fix");
  await userEvent.click(create);
  expect(created).toEqual([
    { matchers: ['alertname="KubePodCrashLooping"', 'namespace="shop"'], durationSeconds: 7200, comment: "deploying a fix" },
  ]);
});

test("the preview names the firing alerts that would be muted", () => {
  renderWith(
    <SilenceForm
      initialMatchers={['namespace="shop"']}
      preview={{ firing: 3, alerts: [{ fingerprint: "f1", labels: { alertname: "A", pod: "web-1" }, since: "2026-12-07T10:00:00Z" }] }}
      onPreview={() => {}}
      onCreate={() => {}}
    />,
  );
  expect(screen.getByRole("status")).toHaveTextContent("1 of 3 firing alerts would be muted.");
  expect(screen.getByText('alertname="A", pod="web-1"')).toBeInTheDocument();
});
