// Test data of the deployments feature (a canary that failed its analysis), shaped like the gateway's answers.
import type { Rollout } from "./queries";

const analysis = {
  inconclusive: "fail" as const,
  metrics: [
    {
      name: "success-rate",
      provider: { kind: "prometheus" as const, query: "sum(rate(ok[1m]))/sum(rate(all[1m]))", timeout_seconds: 10 },
      success_condition: { operator: ">=" as const, threshold: 0.95 },
      failure_condition: null,
      interval_seconds: 1,
      count: 3,
      failure_limit: 1,
      inconclusive_limit: 0,
      initial_delay_seconds: 0,
    },
  ],
};

export function rollout(over: Partial<Rollout> = {}): Rollout {
  return {
    deployment_id: "d-1",
    request_id: "req-1",
    workload: "Deployment/shop/web",
    strategy: "canary",
    state: "rolledback",
    phase: null,
    revision: 3,
    previous_revision: 2,
    requested_at: "2026-01-01T10:00:00Z",
    started_at: "2026-01-01T10:00:01Z",
    finished_at: "2026-01-01T10:01:00Z",
    reason: "analysis_failed",
    message: "analysis success-rate failed 2 of 3",
    analysis: [
      {
        metric: "success-rate",
        outcome: "failed",
        successful: 0,
        failed: 2,
        inconclusive: 0,
        measurements: [
          { outcome: "failed", value: 0.42, error: null },
          { outcome: "failed", value: 0.41, error: null },
        ],
        message: "2 failed, limit 1",
      },
    ],
    images: { app: "registry.example/web:2" },
    canary: {
      steps: [
        { weight: 20, pause_seconds: 5, manual_promotion: false, analysis: null },
        { weight: 50, pause_seconds: null, manual_promotion: false, analysis },
      ],
    },
    blue_green: null,
    analysis_spec: null,
    step: 2,
    stage: "analyse",
    request_reason: "CHG-7",
    ...over,
  };
}
