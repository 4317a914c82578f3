// What the live stream carries and how an `alert.fired` becomes a row before the read model has it.
import type { Incident } from "../api/client";

export interface CloudEvent {
  id: string;
  type: string;
  source: string;
  subject: string;
  time: string;
  correlationid?: string | null;
  data: Record<string, unknown>;
}

export const EVENT_TYPES = [
  "io.opsbus.alert.fired.v1",
  "io.opsbus.alert.resolved.v1",
  "io.opsbus.recovery.planned.v1",
  "io.opsbus.recovery.approved.v1",
  "io.opsbus.recovery.rejected.v1",
  "io.opsbus.recovery.started.v1",
  "io.opsbus.recovery.succeeded.v1",
  "io.opsbus.recovery.failed.v1",
  "io.opsbus.recovery.escalated.v1",
  "io.opsbus.notify.delivered.v1",
  "io.opsbus.notify.failed.v1",
] as const;

/** The incident an `alert.fired` opens, shaped like the API's row (the read model catches up shortly after). */
export function incidentOf(event: CloudEvent): Incident {
  const data = event.data as {
    fingerprint: string;
    alertname: string;
    severity: string;
    labels: Record<string, string>;
    annotations: { summary: string };
    starts_at: string;
    source: string;
  };
  return {
    id: event.id,
    cluster: event.source.split("/")[3] ?? "",
    namespace: data.labels.namespace ?? null,
    fingerprint: data.fingerprint,
    alertname: data.alertname,
    severity: data.severity,
    status: "firing",
    source: data.source,
    summary: data.annotations.summary,
    subject: event.subject,
    labels: data.labels,
    starts_at: data.starts_at,
    ends_at: null,
    recoveries: [],
    notifications: [],
  };
}

/** The incident an event belongs to: its correlation id (the alert.fired's id), or its own id. */
export function incidentIdOf(event: CloudEvent): string {
  return event.correlationid ?? event.id;
}
