import { cleanup, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { api, type AuditEntry } from "../../../api/client";
import i18n from "../../../i18n";
import { renderWith } from "../../../test/render";
import { AuditPage } from "./AuditPage";

function entry(n: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: `e-${n}`,
    time: "2026-01-01T10:00:00Z",
    service: "gateway",
    cluster: "prod",
    namespace: "payments",
    actor: { kind: "apikey", id: "ci-payments" },
    action: "deploy.request",
    target: { kind: "Deployment", namespace: "payments", name: `api-${n}` },
    outcome: "executed",
    reason: `rollout ${n}`,
    details: { image: "api:1.2" },
    request_id: `req-${n}`,
    correlation_id: null,
    dry_run: false,
    ...over,
  };
}

function gateway(pages: Record<string, { items: AuditEntry[]; next_cursor: string | null }>) {
  return vi.spyOn(api, "GET").mockImplementation((async (path: string, init: { params: { query: Record<string, unknown> } }) => {
    expect(path).toBe("/v1/audit");
    const page = pages[String(init.params.query.cursor ?? "first")] ?? { items: [], next_cursor: null };
    return { data: page, response: new Response(null, { status: 200 }) };
  }) as unknown as typeof api.GET);
}

afterEach(async () => {
  cleanup();
  vi.restoreAllMocks();
  await i18n.changeLanguage("en");
}, 30_000);

test("a search from the URL, the older entries by keyset, and the export of the same search", async () => {
  const get = gateway({
    first: { items: [entry(1), entry(2, { outcome: "denied", reason: "out of scope" })], next_cursor: "41" },
    "41": { items: [entry(3)], next_cursor: null },
  });
  renderWith(<AuditPage />, { path: "/audit?actor=ci-payments&outcome=denied" });
  const table = await screen.findByRole("table", { name: "Audit trail" }, { timeout: 10_000 });
  expect(within(table).getAllByRole("row")).toHaveLength(3); // header + 2
  expect(within(table).getByText("Denied")).toBeInTheDocument();
  expect(get.mock.calls[0]?.[1]).toMatchObject({ params: { query: { actor: "ci-payments", outcome: "denied", limit: 50 } } });
  const exporting = screen.getByRole("link", { name: "Export CSV" });
  expect(exporting).toHaveAttribute("href", "/v1/audit/export?actor=ci-payments&outcome=denied");
  await userEvent.click(screen.getByRole("button", { name: "Older entries" }));
  expect(await within(table).findByText("rollout 3")).toBeInTheDocument();
  expect(get.mock.calls[1]?.[1]).toMatchObject({ params: { query: { cursor: "41" } } });
  expect(screen.getByText("End of the trail for this search.")).toBeInTheDocument();
  expect(screen.queryByRole("button", { name: "Older entries" })).not.toBeInTheDocument();
}, 30_000);

test("the form searches by target and says when nothing matches, in Chinese too", async () => {
  const get = gateway({ first: { items: [], next_cursor: null } });
  await i18n.changeLanguage("zh-CN");
  renderWith(<AuditPage />, { path: "/audit" });
  await userEvent.type(screen.getByLabelText("对象"), "checkout");
  await userEvent.click(screen.getByRole("button", { name: "搜索" }));
  expect(await screen.findByText("没有符合此搜索的记录。")).toBeInTheDocument();
  expect(get.mock.calls.at(-1)?.[1]).toMatchObject({ params: { query: { target: "checkout" } } });
}, 30_000);
