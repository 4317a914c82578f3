import { cleanup, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { api } from "../../../api/client";
import i18n from "../../../i18n";
import { renderWith } from "../../../test/render";
import { SignInPage } from "./SignInPage";

function gatewayOffers(methods: { api_key: boolean; oidc: boolean }) {
  return vi.spyOn(api, "GET").mockImplementation((async (path: string) => {
    expect(path).toBe("/v1/session/methods");
    return { data: methods, response: new Response(null, { status: 200 }) };
  }) as unknown as typeof api.GET);
}

afterEach(async () => {
  cleanup(); // before the language changes back, so nothing mounted re-renders
  vi.restoreAllMocks();
  await i18n.changeLanguage("en");
});

test("with SSO configured, a labelled link starts the gateway's flow and comes back to the page asked for", async () => {
  await i18n.changeLanguage("en");
  gatewayOffers({ api_key: true, oidc: true });
  renderWith(<SignInPage />, { role: null, path: "/signin?next=%2Fincidents%3Fstatus%3Dfiring" });
  const sso = await screen.findByRole("link", { name: "Sign in with SSO" });
  expect(sso).toHaveAttribute("href", "/v1/session/oidc/login?next=%2Fincidents%3Fstatus%3Dfiring");
  expect(sso).toHaveAccessibleDescription("Through your organization's identity provider.");
  await userEvent.tab();
  expect(sso).toHaveFocus(); // the first stop for the keyboard
  expect(screen.getByLabelText("API key")).toBeInTheDocument(); // still offered
});

test("without SSO only the API key is offered", async () => {
  const get = gatewayOffers({ api_key: true, oidc: false });
  renderWith(<SignInPage />, { role: null, path: "/signin" });
  await vi.waitFor(() => expect(get).toHaveBeenCalled());
  await screen.findByLabelText("API key");
  expect(screen.queryByRole("link", { name: /SSO/ })).not.toBeInTheDocument();
});

test("a next outside the console is not passed on", async () => {
  gatewayOffers({ api_key: true, oidc: true });
  renderWith(<SignInPage />, { role: null, path: "/signin?next=%2F%2Fevil.example" });
  const sso = await screen.findByRole("link", { name: "Sign in with SSO" });
  expect(sso).toHaveAttribute("href", "/v1/session/oidc/login?next=%2F");
});

test("in Chinese", async () => {
  await i18n.changeLanguage("zh-CN");
  gatewayOffers({ api_key: true, oidc: true });
  renderWith(<SignInPage />, { role: null, path: "/signin" });
  expect(await screen.findByRole("link", { name: "使用单点登录（SSO）" })).toBeInTheDocument();
});
