// Money per month, summed per namespace and for the cluster (Kubecost's view): what the open recommendations
// would save (negative deltas) and what they would add to protect a workload (positive deltas). Pure.
import type { Recommendation } from "./queries";

export interface Totals {
  key: string;
  count: number;
  monthlyNow: number;
  saved: number;
  risked: number;
  currency: string;
}

function add(totals: Map<string, Totals>, key: string, r: Recommendation) {
  const cost = r.recommendation.cost;
  const t = totals.get(key) ?? { key, count: 0, monthlyNow: 0, saved: 0, risked: 0, currency: cost.currency ?? "USD" };
  t.count += 1;
  t.monthlyNow += cost.monthly_now;
  if (cost.monthly_delta < 0) t.saved += -cost.monthly_delta;
  else t.risked += cost.monthly_delta;
  totals.set(key, t);
}

/** Open recommendations only; namespaces sorted by what they would save, the cluster's total first. */
export function totals(items: Recommendation[]): { cluster: Totals; namespaces: Totals[] } {
  const byNamespace = new Map<string, Totals>();
  const cluster = new Map<string, Totals>();
  for (const r of items.filter((i) => i.status === "open")) {
    add(byNamespace, r.namespace, r);
    add(cluster, "", r);
  }
  const empty: Totals = { key: "", count: 0, monthlyNow: 0, saved: 0, risked: 0, currency: "USD" };
  return {
    cluster: cluster.get("") ?? empty,
    namespaces: [...byNamespace.values()].sort((a, b) => b.saved - a.saved || a.key.localeCompare(b.key)),
  };
}

export function money(amount: number, currency: string, lng: string): string {
  return new Intl.NumberFormat(lng, { style: "currency", currency, maximumFractionDigits: 2 }).format(amount);
}

export function cpu(millicores: number | null | undefined): string {
  if (millicores == null) return "-";
  return millicores >= 1000 ? `${(millicores / 1000).toFixed(2)} cores` : `${Math.round(millicores)}m`;
}

export function memory(bytes: number | null | undefined): string {
  if (bytes == null) return "-";
  const mib = bytes / 1024 / 1024;
  return mib >= 1024 ? `${(mib / 1024).toFixed(2)} GiB` : `${Math.round(mib)} MiB`;
}
