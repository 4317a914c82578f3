import type { Incident, PendingApproval } from "../api/client";

export function incident(n: number, over: Partial<Incident> = {}): Incident {
  return {
    id: `inc-${n}`,
    cluster: "prod",
    namespace: "payments",
    fingerprint: `f${n}`,
    alertname: "KubePodCrashLooping",
    severity: "critical",
    status: "firing",
    source: "watcher",
    summary: `pod api-${n} restarts`,
    subject: `Pod/payments/api-${n}`,
    labels: {},
    starts_at: "2026-01-01T10:00:00Z",
    ends_at: null,
    recoveries: [],
    notifications: [],
    ...over,
  };
}

export const pending: PendingApproval = {
  recovery_id: "rec-1",
  step: 1,
  action: { kind: "drain_node", target: { kind: "Node", name: "node-1", namespace: null }, parameters: {}, disruptive: true },
  reason: "drain_node requires approval by policy",
  requested_at: "2026-01-01T10:00:00Z",
  expires_at: "2026-01-01T10:10:00Z",
};
