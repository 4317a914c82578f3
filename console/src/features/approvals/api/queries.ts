// Pending approvals (GET /v1/recoveries/pending) and the decisions (approve/reject, CSRF token added by the client).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../../../api/client";
import { roots } from "../../../api/keys";

export const approvalKeys = { pending: () => [roots.approvals, "pending"] as const };

export function usePending() {
  return useQuery({
    queryKey: approvalKeys.pending(),
    queryFn: async () => unwrap(await api.GET("/v1/recoveries/pending")).items,
  });
}

export interface Decision {
  recoveryId: string;
  step: number;
  approve: boolean;
  text: string;
}

export function useDecide() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ recoveryId, step, approve, text }: Decision) => {
      const path = { recovery_id: recoveryId, step };
      return approve
        ? unwrap(
            await api.POST("/v1/recoveries/{recovery_id}/steps/{step}/approve", {
              params: { path },
              body: { comment: text || null },
            }),
          )
        : unwrap(
            await api.POST("/v1/recoveries/{recovery_id}/steps/{step}/reject", {
              params: { path },
              body: { reason: text },
            }),
          );
    },
    onSettled: () => client.invalidateQueries({ queryKey: [roots.approvals] }),
  });
}
