// The notifier through the gateway: the routing tree and its YAML with versions, silences (list, preview,
// create, expire), the delivery log and what became of one incident's notifications.
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../../../api/client";

export type RouteView = Schemas["RouteView"];
export type RoutesView = Schemas["RoutesView"];
export type Silence = Schemas["SilenceView"];
export type SilencePreview = Schemas["SilencePreview"];
export type Delivery = Schemas["DeliveryAttempt"];
export type AlertOutcome = Schemas["AlertOutcomeView"];
export type ConfigIssue = Schemas["ConfigIssue"];
export type ConfigVersionSummary = Schemas["ConfigVersionSummary"];

const ROOT = "routing";
export const routingKeys = {
  tree: () => [ROOT, "tree"] as const,
  config: (version: number | null) => [ROOT, "config", version ?? "current"] as const,
  versions: () => [ROOT, "versions"] as const,
  silences: () => [ROOT, "silences"] as const,
  deliveries: (outcome: string | null) => [ROOT, "deliveries", outcome ?? "all"] as const,
  outcomes: (incident: string) => [ROOT, "outcomes", incident] as const,
};

export function useRouteTree() {
  return useQuery({ queryKey: routingKeys.tree(), queryFn: async () => unwrap(await api.GET("/v1/routes")) });
}

function configQuery(version: number | null) {
  return {
    queryKey: routingKeys.config(version),
    queryFn: async () =>
      unwrap(await api.GET("/v1/routes/config", { params: { query: version === null ? {} : { version } } })),
    staleTime: Infinity, // the editor works on the version it loaded; a save refreshes it
  };
}

export function useRoutesConfig(version: number | null = null) {
  return useQuery(configQuery(version));
}

export function useFetchRoutesVersion() {
  const client = useQueryClient();
  return async (version: number) => (await client.fetchQuery(configQuery(version))).yaml;
}

export function useRoutesVersions() {
  return useQuery({
    queryKey: routingKeys.versions(),
    queryFn: async () => unwrap(await api.GET("/v1/routes/versions")).versions,
  });
}

export function useValidateRoutes() {
  return useMutation({
    mutationFn: async (yaml: string) => unwrap(await api.POST("/v1/routes/validate", { body: { yaml } })),
  });
}

export function usePutRoutes() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ yaml, expectedVersion, comment }: { yaml: string; expectedVersion: number; comment: string }) =>
      unwrap(await api.PUT("/v1/routes", { body: { yaml, expected_version: expectedVersion, comment: comment || null } })),
    onSuccess: (answer) => {
      client.setQueryData(routingKeys.config(null), answer);
      void client.invalidateQueries({ queryKey: routingKeys.versions() });
      void client.invalidateQueries({ queryKey: routingKeys.tree() });
    },
  });
}

export function useSilences() {
  return useQuery({
    queryKey: routingKeys.silences(),
    queryFn: async () => unwrap(await api.GET("/v1/silences")).silences,
  });
}

export function usePreviewSilence() {
  return useMutation({
    mutationFn: async (matchers: string[]) => unwrap(await api.POST("/v1/silences/preview", { body: { matchers } })),
  });
}

export interface NewSilence {
  matchers: string[];
  durationSeconds: number;
  comment: string;
}

export function useCreateSilence() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ matchers, durationSeconds, comment }: NewSilence) =>
      unwrap(await api.POST("/v1/silences", { body: { matchers, duration_seconds: durationSeconds, comment } })),
    onSettled: () => client.invalidateQueries({ queryKey: routingKeys.silences() }),
  });
}

export function useExpireSilence() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.DELETE("/v1/silences/{silence_id}", { params: { path: { silence_id: id } } })),
    onSettled: () => client.invalidateQueries({ queryKey: routingKeys.silences() }),
  });
}

export function useDeliveries(outcome: "delivered" | "retry" | "dead" | null) {
  return useInfiniteQuery({
    queryKey: routingKeys.deliveries(outcome),
    initialPageParam: null as number | null,
    queryFn: async ({ pageParam }) =>
      unwrap(
        await api.GET("/v1/notifications/deliveries", {
          params: { query: { limit: 100, ...(outcome ? { outcome } : {}), ...(pageParam ? { before: pageParam } : {}) } },
        }),
      ),
    getNextPageParam: (page) => page.next_before ?? null,
  });
}

/** Polled: after a silence, its outcome turns to `muted` when the notifier flushes the group. */
export function useIncidentOutcomes(incident: string | null) {
  return useQuery({
    queryKey: routingKeys.outcomes(incident ?? ""),
    queryFn: async () =>
      unwrap(
        await api.GET("/v1/incidents/{incident_id}/notifications", { params: { path: { incident_id: incident! } } }),
      ).items,
    enabled: incident !== null,
    refetchInterval: 2000,
  });
}
