// Test data of the recommendations feature, shaped like the gateway's answers.
import type { ContainerUsage, Recommendation } from "./queries";

export function recommendation(id: string, namespace: string, delta: number, now: number, status = "open"): Recommendation {
  return {
    id,
    namespace,
    workload: "web",
    created_at: "2026-01-01T10:00:00Z",
    action: "recommend",
    guard: null,
    reason: "p95 well below the request",
    status,
    recommendation: {
      recommendation_id: id,
      workload: { kind: "Deployment", namespace, name: "web" },
      containers: [
        {
          container: "app",
          current: { requests: { cpu_millicores: 1000, memory_bytes: 1024 * 1024 * 1024 }, limits: { cpu_millicores: 2000, memory_bytes: 2048 * 1024 * 1024 } },
          recommended: { requests: { cpu_millicores: 120, memory_bytes: 256 * 1024 * 1024 }, limits: { cpu_millicores: null, memory_bytes: 512 * 1024 * 1024 } },
          basis: "p95 cpu over 8d + 15%",
        },
      ],
      replicas: null,
      cost: { currency: "USD", monthly_now: now, monthly_after: now + delta, monthly_delta: delta },
      mode: "recommend",
      confidence: 0.9,
      risk: "low",
      reason: "p95 well below the request",
      observation_seconds: 691200,
    } as Recommendation["recommendation"],
  };
}

export const usage: ContainerUsage = {
  container: "app",
  samples: 900,
  observed_seconds: 691200,
  cpu: {
    unit: "millicores",
    p50: 80,
    p90: 95,
    p95: 100,
    p99: 110,
    max: 115,
    buckets: [
      { start: 70, end: 80, share: 0.5 },
      { start: 80, end: 100, share: 0.45 },
      { start: 100, end: 115, share: 0.05 },
    ],
  },
  memory: { unit: "bytes", p50: 2e8, p90: 2.1e8, p95: 2.2e8, p99: 2.3e8, max: 2.4e8, buckets: [{ start: 1.9e8, end: 2.4e8, share: 1 }] },
};
