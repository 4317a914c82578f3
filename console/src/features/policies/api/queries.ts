// Remediation policies through the gateway (the healer answers): the version in force and past ones, their
// history, validation, the preview on past incidents and a put (also how a rollback is made).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../../../api/client";

export type PolicyPreview = Schemas["PolicyPreview"];
export type PreviewItem = Schemas["PreviewItem"];
export type PreviewOutcome = Schemas["PreviewOutcome"];
export type PolicyVersion = Schemas["PolicyVersion"];
export type PolicyIssue = Schemas["Issue"];

const ROOT = "policies";
export const policyKeys = {
  all: () => [ROOT] as const,
  current: () => [ROOT, "current"] as const,
  version: (version: number) => [ROOT, "version", version] as const,
  versions: () => [ROOT, "versions"] as const,
};

export function useCurrentPolicies() {
  return useQuery({
    queryKey: policyKeys.current(),
    queryFn: async () => unwrap(await api.GET("/v1/policies")),
    staleTime: Infinity, // the editor works on the version it loaded; a save or a reload refreshes it
  });
}

function versionQuery(version: number) {
  return {
    queryKey: policyKeys.version(version),
    queryFn: async () => unwrap(await api.GET("/v1/policies", { params: { query: { version } } })),
    staleTime: Infinity, // a stored version never changes
  };
}

export function usePolicyVersion(version: number | null) {
  return useQuery({ ...versionQuery(version ?? 0), enabled: version !== null });
}

/** A past version's document, from the cache when it was already shown. */
export function useFetchPolicyVersion() {
  const client = useQueryClient();
  return async (version: number) => (await client.fetchQuery(versionQuery(version))).document;
}

export function usePolicyVersions() {
  return useQuery({
    queryKey: policyKeys.versions(),
    queryFn: async () => unwrap(await api.GET("/v1/policies/versions")).versions,
  });
}

export function useValidatePolicy() {
  return useMutation({
    mutationFn: async (document: string) => unwrap(await api.POST("/v1/policies/validate", { body: { document } })),
  });
}

export function usePreviewPolicy() {
  return useMutation({
    mutationFn: async ({ document, limit }: { document: string; limit: number }) =>
      unwrap(await api.POST("/v1/policies/preview", { body: { document, limit } })),
  });
}

export interface PolicyPut {
  document: string;
  expectedVersion: number;
  comment: string;
}

export function usePutPolicies() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ document, expectedVersion, comment }: PolicyPut) =>
      unwrap(
        await api.PUT("/v1/policies", {
          body: { document, expected_version: expectedVersion, comment: comment || null },
        }),
      ),
    onSuccess: (answer) => {
      client.setQueryData(policyKeys.current(), answer);
      void client.invalidateQueries({ queryKey: policyKeys.versions() });
    },
  });
}
