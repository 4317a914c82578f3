// Incidents from GET /v1/incidents (filtered, paged by cursor) and GET /v1/incidents/{id}.
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../../../api/client";
import { roots } from "../../../api/keys";

export interface IncidentFilters {
  status?: "firing" | "resolved";
  severity?: "critical" | "warning" | "info";
  namespace?: string;
  alertname?: string;
}

export const incidentKeys = {
  list: (filters: IncidentFilters) => [roots.incidents, filters] as const,
  one: (id: string) => [roots.incident, id] as const,
};

export function useIncidents(filters: IncidentFilters) {
  return useInfiniteQuery({
    queryKey: incidentKeys.list(filters),
    queryFn: async ({ pageParam }) =>
      unwrap(
        await api.GET("/v1/incidents", { params: { query: { ...filters, cursor: pageParam, limit: 200 } } }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
}

export function useIncident(id: string) {
  return useQuery({
    queryKey: incidentKeys.one(id),
    queryFn: async () => unwrap(await api.GET("/v1/incidents/{incident_id}", { params: { path: { incident_id: id } } })),
    retry: false,
  });
}
