// The audit search: GET /v1/audit by keyset (each page asks for the entries older than the last one seen) and the
// same search as a streamed CSV file (GET /v1/audit/export).
import { useInfiniteQuery } from "@tanstack/react-query";
import { api, unwrap } from "../../../api/client";

export const OUTCOMES = ["executed", "skipped", "dry_run", "denied", "failed"] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const FIELDS = ["actor", "action", "target", "namespace", "outcome", "since", "until"] as const;
export type AuditFilters = Partial<Record<(typeof FIELDS)[number], string>>;

export const auditKeys = {
  search: (filters: AuditFilters) => ["audit", filters] as const,
};

/** The filters as the gateway takes them: times from the form's local time to an instant with its zone. */
export function toQuery(filters: AuditFilters): Record<string, string> {
  const query: Record<string, string> = {};
  for (const field of FIELDS) {
    const value = filters[field]?.trim();
    if (!value) continue;
    query[field] = field === "since" || field === "until" ? new Date(value).toISOString() : value;
  }
  return query;
}

export function exportUrl(filters: AuditFilters): string {
  const params = new URLSearchParams(toQuery(filters));
  const query = params.toString();
  return `/v1/audit/export${query ? `?${query}` : ""}`;
}

export function useAuditSearch(filters: AuditFilters) {
  return useInfiniteQuery({
    queryKey: auditKeys.search(filters),
    queryFn: async ({ pageParam }) =>
      unwrap(
        await api.GET("/v1/audit", {
          params: { query: { ...(toQuery(filters) as object), cursor: pageParam, limit: 50 } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
}
