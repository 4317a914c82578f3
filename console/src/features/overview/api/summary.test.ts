import { incident } from "../../../test/fixtures";
import { summarize } from "./summary";

const ev = (type: string, correlationid: string, sequence: number) => ({
  sequence,
  subject: "s",
  time: "2026-01-01T10:00:00Z",
  event: { type: `io.opsbus.${type}.v1`, correlationid, id: `e${sequence}` },
});

test("figures: firing by severity, MTTR, actions, escalations, rollouts still running", () => {
  const o = summarize({
    firing: [incident(1), incident(2, { severity: "warning" }), incident(3)],
    resolved: [incident(4, { status: "resolved", starts_at: "2026-01-01T10:00:00Z", ends_at: "2026-01-01T10:10:00Z" })],
    recoveries: [ev("recovery.planned", "a", 1), ev("recovery.succeeded", "a", 2), ev("recovery.failed", "b", 3), ev("recovery.escalated", "b", 4)],
    deploys: [ev("deploy.requested", "d1", 1), ev("deploy.started", "d1", 2), ev("deploy.started", "d2", 3), ev("deploy.succeeded", "d2", 4)],
    deferred: 2,
  });
  expect(o).toEqual({
    bySeverity: { critical: 2, warning: 1, info: 0 },
    mttrSeconds: 600,
    actions: 2,
    deferred: 2,
    escalated: 1,
    rolloutsInProgress: 1,
  });
});
