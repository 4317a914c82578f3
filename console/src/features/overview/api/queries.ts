// The overview's figures, from the gateway's own endpoints: incidents, the recovery and deploy streams' last
// 24 hours (GET /v1/events) and the healer's deferrals in the audit trail.
import { useQuery } from "@tanstack/react-query";
import { api, unwrap, type Incident, type PastEvent } from "../../../api/client";
import { roots } from "../../../api/keys";
import { summarize } from "./summary";

const DAY_MS = 24 * 3600 * 1000;

async function incidents(status: "firing" | "resolved", since?: string): Promise<Incident[]> {
  const page = unwrap(await api.GET("/v1/incidents", { params: { query: { status, since, limit: 200 } } }));
  return page.items;
}

async function events(subject: string, since: string): Promise<PastEvent[]> {
  return unwrap(await api.GET("/v1/events", { params: { query: { subject, since, limit: 1000 } } })).events;
}

export const overviewKeys = { figures: () => [roots.overview] as const };

export function useOverview() {
  return useQuery({
    queryKey: overviewKeys.figures(),
    queryFn: async () => {
      const since = new Date(Date.now() - DAY_MS).toISOString();
      const [firing, resolved, recoveries, deploys, deferrals] = await Promise.all([
        incidents("firing"),
        incidents("resolved", since),
        events("recovery.>", since),
        events("deploy.>", since),
        api.GET("/v1/audit", { params: { query: { action: "recovery.defer", since, limit: 500 } } }).then(unwrap),
      ]);
      return summarize({ firing, resolved, recoveries, deploys, deferred: deferrals.items.length });
    },
  });
}
