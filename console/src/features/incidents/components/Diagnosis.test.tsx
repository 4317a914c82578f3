import { screen, within } from "@testing-library/react";
import i18n from "../../../i18n";
import { incident } from "../../../test/fixtures";
import { renderWith } from "../../../test/render";
import { IncidentTimeline } from "./IncidentTimeline";

const diagnosis = (data: Record<string, unknown>) => ({
  id: "diag-2",
  type: "io.opsbus.diagnosis.revised.v1",
  time: "2026-01-01T10:01:00Z",
  subject: "Deployment/payments/api",
  data: { revision: 2, checked: [{ source: "changes", count: 3, detail: "30 min before the first alert" }], ...data },
});

const rollout = {
  kind: "rollout",
  summary: "Image of Deployment payments/api changed to api:2.1 four minutes before the crash loop",
  confidence: 0.82,
  suggested_action: "rollback",
  evidence: [
    { kind: "change", ref: "chg-7", detail: "image api:2.0 -> api:2.1" },
    { kind: "container_state", ref: "CrashLoopBackOff", detail: null },
  ],
};
const weak = { ...rollout, summary: "Node node-3 under memory pressure", confidence: 0.2, suggested_action: "cordon_node" };

afterEach(() => i18n.changeLanguage("en"));

test("the timeline shows the top cause, its confidence, the suggested action and its evidence", async () => {
  await i18n.changeLanguage("en");
  renderWith(<IncidentTimeline incident={incident(1, { diagnosis: diagnosis({ outcome: "explained", causes: [weak, rollout] }) })} />);
  const entry = screen.getByRole("heading", { name: "Diagnosis (revision 2)" }).closest("li") as HTMLElement;
  expect(within(entry).getByText(/api:2.1 four minutes before/)).toBeInTheDocument();
  expect(within(entry).queryByText(/memory pressure/)).not.toBeInTheDocument();
  expect(within(entry).getByText("82%")).toBeInTheDocument();
  expect(within(entry).getByText("rollback")).toBeInTheDocument();
  expect(within(entry).getByText("chg-7")).toBeInTheDocument();
  expect(within(entry).getByText(/Container state/)).toBeInTheDocument();
});

test("an unknown diagnosis says so and lists what was checked, in Chinese too", async () => {
  await i18n.changeLanguage("zh-CN");
  renderWith(<IncidentTimeline incident={incident(1, { diagnosis: diagnosis({ outcome: "unknown", causes: [] }) })} />);
  expect(screen.getByRole("heading", { name: "诊断（第 2 版）" })).toBeInTheDocument();
  expect(screen.getByText(/^未知/)).toBeInTheDocument();
  expect(screen.getByText(/changes：已检查 3 项/)).toBeInTheDocument();
  expect(screen.getByText(/30 min before the first alert/)).toBeInTheDocument();
});

test("no diagnosis yet: no diagnosis entry", () => {
  renderWith(<IncidentTimeline incident={incident(1)} />);
  expect(screen.queryByRole("heading", { name: /Diagnosis/ })).not.toBeInTheDocument();
});
