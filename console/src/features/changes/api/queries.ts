// The timeline's data: the changes (GET /v1/changes) of a cluster, namespace or workload and the incidents
// (GET /v1/incidents) of the same scope and period. Without change events in the period (no watcher, or history
// older than its stream), opsbus's own actions from the audit trail stand in: rollouts requested, recoveries
// carried out, recommendations applied.
import { useQuery } from "@tanstack/react-query";
import { api, unwrap, type Incident } from "../../../api/client";
import type { Point } from "../components/axis";

export const WINDOWS = { "1h": 3600_000, "6h": 6 * 3600_000, "24h": 24 * 3600_000, "7d": 7 * 24 * 3600_000 } as const;
export type Window = keyof typeof WINDOWS;

export interface Scope {
  cluster?: string;
  namespace?: string;
  workload?: string;
  window: Window;
}

export const changeKeys = { timeline: (scope: Scope) => ["changes", scope] as const };

const QUIET = /^(console|apikey)\./;

function touches(incident: Incident, workload: string | undefined): boolean {
  if (!workload) return true;
  return incident.labels.workload === workload || incident.subject.endsWith(`/${workload}`) || incident.labels.deployment === workload;
}

export function useTimeline(scope: Scope, now: () => number = Date.now) {
  return useQuery({
    queryKey: changeKeys.timeline(scope),
    queryFn: async () => {
      const to = now();
      const since = new Date(to - WINDOWS[scope.window]).toISOString();
      const where = { cluster: scope.cluster, namespace: scope.namespace };
      const [changes, incidents] = await Promise.all([
        api.GET("/v1/changes", { params: { query: { ...where, workload: scope.workload, since, limit: 500 } } }),
        api.GET("/v1/incidents", { params: { query: { ...where, since, limit: 200 } } }),
      ]);
      const points: Point[] = unwrap(changes).items.map((c) => ({
        kind: "change",
        id: c.id,
        time: c.time,
        summary: c.summary,
        origin: c.origin,
        detail: c.change,
      }));
      let fallback = false;
      if (points.length === 0) {
        const query = { ...where, target: scope.workload, since, outcome: "executed" as const, limit: 500 };
        const audit = unwrap(await api.GET("/v1/audit", { params: { query } })).items;
        for (const e of audit.filter((a) => !QUIET.test(a.action))) {
          fallback = true;
          points.push({
            kind: "change",
            id: e.id,
            time: e.time,
            summary: `${e.action} ${[e.target.kind, e.target.namespace, e.target.name].filter(Boolean).join("/")}: ${e.reason}`,
            origin: "audit",
            detail: { actor: e.actor, details: e.details },
          });
        }
      }
      for (const i of unwrap(incidents).items.filter((i) => touches(i, scope.workload))) {
        points.push({ kind: "incident", id: i.id, time: i.starts_at, summary: i.summary, alertname: i.alertname, severity: i.severity });
      }
      points.sort((a, b) => a.time.localeCompare(b.time));
      return { points, fallback, from: since, to: new Date(to).toISOString() };
    },
  });
}
