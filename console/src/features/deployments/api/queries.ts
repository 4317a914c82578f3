// The deployments feature's server state: the latest rollouts, one rollout (polled while it runs), its
// ReplicaSets, the workload's history, the commands (abort, promote, retry) and new requests.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../../../api/client";

export type Rollout = Schemas["RolloutView"];
export type ReplicaSet = Schemas["ReplicaSetView"];
export type Revision = Schemas["RevisionView"];
export type DeploymentRequest = Schemas["DeploymentRequest"];
export type AnalysisResult = Schemas["AnalysisResult"];
export type AnalysisMetric = Schemas["AnalysisMetric"];

const ROOT = "deployments";
export const deploymentKeys = {
  recent: (namespace: string) => [ROOT, "recent", namespace] as const,
  rollout: (id: string) => [ROOT, "rollout", id] as const,
  replicaSets: (id: string) => [ROOT, "replicasets", id] as const,
  history: (namespace: string, name: string, state: string) => [ROOT, "history", namespace, name, state] as const,
};

const ACTIVE = new Set(["requested", "queued", "running"]);
export const isActive = (state: string | undefined) => state !== undefined && ACTIVE.has(state);
const POLL_MS = 2000;

export function useRecent(namespace: string) {
  return useQuery({
    queryKey: deploymentKeys.recent(namespace),
    queryFn: async () =>
      unwrap(await api.GET("/v1/deployments/recent", { params: { query: { namespace: namespace || undefined } } }))
        .rollouts,
    refetchInterval: POLL_MS * 2,
  });
}

export function useRollout(id: string) {
  return useQuery({
    queryKey: deploymentKeys.rollout(id),
    queryFn: async () => unwrap(await api.GET("/v1/deployments/{request_id}", { params: { path: { request_id: id } } })),
    // a request published on the bus is unknown (404) until the deployer records it: keep asking
    retry: false,
    refetchInterval: (query) => (query.state.error || isActive(query.state.data?.state) ? POLL_MS : false),
  });
}

export function useReplicaSets(id: string, active: boolean) {
  return useQuery({
    queryKey: deploymentKeys.replicaSets(id),
    queryFn: async () =>
      unwrap(await api.GET("/v1/deployments/{request_id}/replicasets", { params: { path: { request_id: id } } }))
        .replica_sets,
    refetchInterval: active ? POLL_MS : false,
    retry: false,
  });
}

/** The workload's history, read again whenever the rollout shown changes state (a finished one adds a revision). */
export function useHistory(namespace: string, name: string, state: string) {
  return useQuery({
    queryKey: deploymentKeys.history(namespace, name, state),
    queryFn: async () => unwrap(await api.GET("/v1/deployments", { params: { query: { namespace, name } } })),
    enabled: namespace !== "" && name !== "",
  });
}

export type CommandKind = "abort" | "promote";

export function useCommand(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ kind, reason }: { kind: CommandKind; reason: string }) => {
      const params = { path: { request_id: id } };
      return kind === "abort"
        ? unwrap(await api.POST("/v1/deployments/{request_id}/abort", { params, body: { reason } }))
        : unwrap(await api.POST("/v1/deployments/{request_id}/promote", { params, body: { reason } }));
    },
    onSettled: () => client.invalidateQueries({ queryKey: [ROOT] }),
  });
}

export function useRequestDeployment() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (body: DeploymentRequest) => unwrap(await api.POST("/v1/deployments", { body })),
    onSettled: () => client.invalidateQueries({ queryKey: [ROOT] }),
  });
}
