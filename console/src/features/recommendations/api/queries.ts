// The recommendations feature's server state: the list (one namespace or all of the caller's), a workload's
// usage distribution, and apply (dry run or for real).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../../../api/client";

export type Recommendation = Schemas["RecommendationView"];
export type ContainerUsage = Schemas["ContainerUsageView"];
export type ResourceUsage = Schemas["ResourceUsage"];
export type ContainerRecommendation = Schemas["ContainerRecommendation"];

const ROOT = "recommendations";
export const recommendationKeys = {
  list: (namespace: string, status: string) => [ROOT, "list", namespace, status] as const,
  usage: (namespace: string, workload: string) => [ROOT, "usage", namespace, workload] as const,
};

export function useRecommendations(namespace: string, status: string) {
  return useQuery({
    queryKey: recommendationKeys.list(namespace, status),
    queryFn: async () =>
      unwrap(
        await api.GET("/v1/recommendations", {
          params: {
            query: {
              namespace: namespace || undefined,
              status: (status || undefined) as "open" | "applied" | "superseded" | undefined,
            },
          },
        }),
      ).recommendations,
  });
}

export function useUsage(namespace: string, workload: string, enabled: boolean) {
  return useQuery({
    enabled,
    queryKey: recommendationKeys.usage(namespace, workload),
    queryFn: async () =>
      unwrap(await api.GET("/v1/recommendations/usage", { params: { query: { namespace, workload } } })).containers,
  });
}

export function useApply() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ id, dryRun, comment }: { id: string; dryRun: boolean; comment: string }) =>
      unwrap(
        await api.POST("/v1/recommendations/{recommendation_id}/apply", {
          params: { path: { recommendation_id: id } },
          body: { dry_run: dryRun, comment: comment || null },
        }),
      ),
    onSettled: (_data, _error, vars) => {
      if (!vars.dryRun) void client.invalidateQueries({ queryKey: [ROOT] });
    },
  });
}
