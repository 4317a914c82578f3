// Pure: the overview's figures from what the endpoints returned.
import type { Incident, PastEvent } from "../../../api/client";

export interface Overview {
  bySeverity: Record<"critical" | "warning" | "info", number>;
  mttrSeconds: number | null;
  actions: number;
  deferred: number;
  escalated: number;
  rolloutsInProgress: number;
}

const TERMINAL = new Set(["succeeded", "failed", "rolledback", "superseded", "aborted", "skipped", "rollback_failed"]);

function verb(e: PastEvent): string {
  return String(e.event?.type ?? "").split(".")[3] ?? "";
}

export function summarize(input: {
  firing: Incident[];
  resolved: Incident[];
  recoveries: PastEvent[];
  deploys: PastEvent[];
  deferred: number;
}): Overview {
  const bySeverity = { critical: 0, warning: 0, info: 0 };
  for (const i of input.firing) {
    if (i.severity in bySeverity) bySeverity[i.severity as keyof typeof bySeverity] += 1;
  }
  const durations = input.resolved
    .filter((i) => i.ends_at)
    .map((i) => (Date.parse(i.ends_at as string) - Date.parse(i.starts_at)) / 1000);
  const mttrSeconds = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : null;
  const verbs = input.recoveries.map(verb);
  const rollouts = new Map<string, string>();
  for (const e of input.deploys) {
    const id = String(e.event?.correlationid ?? e.event?.id ?? e.sequence);
    rollouts.set(id, verb(e));
  }
  return {
    bySeverity,
    mttrSeconds,
    actions: verbs.filter((v) => v === "succeeded" || v === "failed").length,
    deferred: input.deferred,
    escalated: verbs.filter((v) => v === "escalated").length,
    rolloutsInProgress: [...rollouts.values()].filter((v) => !TERMINAL.has(v)).length,
  };
}
