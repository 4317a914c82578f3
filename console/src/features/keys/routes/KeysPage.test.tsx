import { cleanup, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { api } from "../../../api/client";
import { renderWith } from "../../../test/render";
import { KeysPage } from "./KeysPage";

const key = {
  id: "k-1",
  name: "ci-payments",
  prefix: "opsb_ab12",
  role: "operator",
  namespaces: ["payments"],
  clusters: ["*"],
  created_at: "2026-01-01T10:00:00Z",
  created_by: "admin",
  expires_at: null,
  revoked_at: null,
};
const session = {
  id: "s-1",
  kind: "apikey",
  subject: "k-1",
  key_prefix: "opsb_ab12",
  display_name: "ci-payments",
  role: "operator",
  namespaces: ["payments"],
  clusters: ["*"],
  created_at: "2026-01-01T10:00:00Z",
  expires_at: "2099-01-01T10:00:00Z",
  ended_at: null,
};
const ok = (data: unknown) => ({ data, response: new Response(null, { status: 200 }) });

function gateway() {
  vi.spyOn(api, "GET").mockImplementation((async (path: string) => {
    if (path === "/v1/keys") return ok({ items: [key] });
    if (path === "/v1/sessions") return ok({ items: [session] });
    return ok({ items: [] });
  }) as unknown as typeof api.GET);
  const post = vi
    .spyOn(api, "POST")
    .mockImplementation((async () => ok({ ...key, id: "k-2", name: "ci-web", token: "opsb_cd34_secret" })) as unknown as typeof api.POST);
  const del = vi.spyOn(api, "DELETE").mockImplementation((async () => ok({ ...session, ended_at: "2026-01-01T11:00:00Z" })) as unknown as typeof api.DELETE);
  return { post, del };
}

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
}, 30_000);

test("an admin creates a key with role, scope and expiry and sees its secret once", async () => {
  const { post } = gateway();
  renderWith(<KeysPage />, { role: "admin" });
  await userEvent.type(screen.getByLabelText("Name"), "ci-web");
  await userEvent.selectOptions(screen.getByLabelText("Role"), "operator");
  await userEvent.type(screen.getByLabelText("Namespaces"), "web, shop");
  await userEvent.clear(screen.getByLabelText("Expires after (days)"));
  await userEvent.type(screen.getByLabelText("Expires after (days)"), "7");
  await userEvent.click(screen.getByRole("button", { name: "Create key" }));
  const secret = await screen.findByTestId("secret-once");
  expect(within(secret).getByLabelText("The new API key")).toHaveValue("opsb_cd34_secret");
  expect(post.mock.calls[0]?.[1]).toEqual({
    body: { name: "ci-web", role: "operator", namespaces: ["web", "shop"], clusters: ["*"], ttl_seconds: 7 * 86400 },
  });
  await userEvent.click(screen.getByRole("button", { name: "I have stored it" }));
  expect(screen.queryByDisplayValue("opsb_cd34_secret")).not.toBeInTheDocument();
}, 30_000);

test("an admin revokes a key after confirming and ends a session", async () => {
  const { del } = gateway();
  vi.spyOn(window, "confirm").mockReturnValue(true);
  renderWith(<KeysPage />, { role: "admin" });
  await userEvent.click(await screen.findByRole("button", { name: "Revoke ci-payments" }, { timeout: 10_000 }));
  expect(del.mock.calls[0]?.[0]).toBe("/v1/keys/{key_id}");
  await userEvent.click(await screen.findByRole("button", { name: "End session of ci-payments" }));
  expect(del.mock.calls[1]?.[1]).toEqual({ params: { path: { session_id: "s-1" } } });
}, 30_000);

test("a viewer is told the page is for admins and is offered nothing", () => {
  gateway();
  renderWith(<KeysPage />, { role: "viewer" });
  expect(screen.getByText("Only admins manage keys and see sessions.")).toBeInTheDocument();
  expect(screen.queryByRole("button")).toBeNull();
}, 30_000);
