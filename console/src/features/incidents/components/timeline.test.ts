import { incident } from "../../../test/fixtures";
import { timelineOf } from "./timeline";

const step = (id: string, verb: string, time: string, data: Record<string, unknown>) => ({
  id,
  type: `io.opsbus.recovery.${verb}.v1`,
  time,
  subject: "Pod/payments/api-1",
  data,
});

test("one timeline, oldest first: alert, steps with outcome and reason, approvals, notifications, resolution", () => {
  const action = { kind: "delete_pod", target: { kind: "Pod", namespace: "payments", name: "api-1" } };
  const entries = timelineOf(
    incident(1, {
      status: "resolved",
      ends_at: "2026-01-01T10:05:00Z",
      recoveries: [
        step("s2", "failed", "2026-01-01T10:02:00Z", { action, reason: "pod not replaced in 60s" }),
        step("s1", "planned", "2026-01-01T10:01:00Z", { action, reason: "policy careful-crashloop" }),
        step("a1", "approved", "2026-01-01T10:01:30Z", { approver: { id: "k9", display_name: "alice" } }),
      ],
      notifications: [
        { id: "n1", type: "io.opsbus.notify.delivered.v1", time: "2026-01-01T10:00:30Z", subject: "x", data: { channel: "slack", receiver: "oncall" } },
      ],
    }),
  );
  expect(entries.map((e) => `${e.kind}:${e.verb}`)).toEqual([
    "fired:fired",
    "notification:delivered",
    "recovery:planned",
    "approval:approved",
    "recovery:failed",
    "resolved:resolved",
  ]);
  expect(entries[4]).toMatchObject({ outcome: "failed", reason: "pod not replaced in 60s", target: "Pod/payments/api-1" });
  expect(entries[3]).toMatchObject({ who: "alice" });
});
