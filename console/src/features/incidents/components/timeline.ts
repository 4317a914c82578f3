// One incident as one timeline, oldest first: the alert, every recovery step (no-ops included) with its outcome
// and reason, approvals and notifications, the analyzer's latest diagnosis, the resolution. Pure, so it is tested without a browser.
import type { ChainEvent, Incident } from "../../../api/client";

export type EntryKind = "fired" | "diagnosis" | "recovery" | "approval" | "notification" | "resolved";

export interface TimelineEntry {
  key: string;
  kind: EntryKind;
  time: string;
  verb: string;
  action?: string;
  target?: string;
  reason?: string;
  outcome?: string;
  who?: string;
  revision?: number;
}

interface StepData {
  action?: { kind?: string; target?: { kind?: string; namespace?: string | null; name?: string } };
  reason?: string | null;
  error?: string | null;
  approver?: { id?: string; display_name?: string | null };
  approved_by?: { id?: string; display_name?: string | null } | null;
  verification?: { passed?: boolean; detail?: string } | null;
  receiver?: string;
  channel?: string;
  step?: number;
  recovery_id?: string;
}

function verbOf(type: string): string {
  return type.split(".")[3] ?? type;
}

function target(data: StepData): string | undefined {
  const t = data.action?.target;
  if (!t) return undefined;
  return [t.kind, t.namespace, t.name].filter(Boolean).join("/");
}

function recoveryEntry(event: ChainEvent): TimelineEntry {
  const data = event.data as StepData;
  const verb = verbOf(event.type);
  const approval = verb === "approved" || verb === "rejected";
  const person = data.approver ?? data.approved_by ?? undefined;
  return {
    key: event.id,
    kind: approval ? "approval" : "recovery",
    time: event.time,
    verb,
    action: data.action?.kind,
    target: target(data),
    reason: data.reason ?? data.error ?? data.verification?.detail ?? undefined,
    outcome: verb === "succeeded" || verb === "failed" || verb === "escalated" ? verb : undefined,
    who: person ? (person.display_name ?? person.id) : undefined,
  };
}

function notificationEntry(event: ChainEvent): TimelineEntry {
  const data = event.data as StepData;
  return {
    key: event.id,
    kind: "notification",
    time: event.time,
    verb: verbOf(event.type),
    target: [data.channel, data.receiver].filter(Boolean).join(": "),
    reason: data.error ?? undefined,
  };
}

export function timelineOf(incident: Incident): TimelineEntry[] {
  const entries: TimelineEntry[] = [
    { key: `${incident.id}:fired`, kind: "fired", time: incident.starts_at, verb: "fired", reason: incident.summary },
    ...incident.recoveries.map(recoveryEntry),
    ...incident.notifications.map(notificationEntry),
  ];
  if (incident.diagnosis) {
    const d = incident.diagnosis;
    const revision = Number((d.data as { revision?: number }).revision ?? 1);
    entries.push({ key: d.id, kind: "diagnosis", time: d.time, verb: verbOf(d.type), revision });
  }
  if (incident.status === "resolved" && incident.ends_at) {
    entries.push({ key: `${incident.id}:resolved`, kind: "resolved", time: incident.ends_at, verb: "resolved" });
  }
  return entries.sort((a, b) => a.time.localeCompare(b.time));
}
