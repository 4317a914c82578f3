// What the request form sends (a DeploymentRequest) and how a finished rollout is retried: the same workload,
// strategy, images, steps and analysis, requested again. Pure, tested without a browser.
import type { DeploymentRequest, Rollout } from "./queries";

export type StrategyName = "rolling" | "recreate" | "canary" | "blue-green";

export interface StepDraft {
  weight: number;
  pauseSeconds: number | null;
  manual: boolean;
}

export interface AnalysisDraft {
  enabled: boolean;
  name: string;
  query: string;
  operator: ">=" | ">" | "<=" | "<";
  threshold: number;
  intervalSeconds: number;
  count: number;
  failureLimit: number;
}

export interface FormDraft {
  namespace: string;
  name: string;
  container: string;
  image: string;
  strategy: StrategyName;
  steps: StepDraft[];
  activeService: string;
  analysis: AnalysisDraft;
  reason: string;
}

export const emptyDraft: FormDraft = {
  namespace: "",
  name: "",
  container: "app",
  image: "",
  strategy: "canary",
  steps: [
    { weight: 20, pauseSeconds: 30, manual: false },
    { weight: 50, pauseSeconds: null, manual: true },
  ],
  activeService: "",
  analysis: {
    enabled: false,
    name: "success-rate",
    query: "",
    operator: ">=",
    threshold: 0.95,
    intervalSeconds: 30,
    count: 5,
    failureLimit: 1,
  },
  reason: "",
};

function analysisOf(draft: AnalysisDraft): DeploymentRequest["analysis"] {
  if (!draft.enabled) return null;
  return {
    inconclusive: "fail", // no data or a provider error never passes (fails closed)
    metrics: [
      {
        name: draft.name,
        provider: { kind: "prometheus", query: draft.query, timeout_seconds: 10 },
        success_condition: { operator: draft.operator, threshold: draft.threshold },
        interval_seconds: draft.intervalSeconds,
        count: draft.count,
        failure_limit: draft.failureLimit,
        inconclusive_limit: 0,
        initial_delay_seconds: 0,
      },
    ],
  };
}

/** The body of POST /v1/deployments; the gateway checks the rules (ascending weights...) and answers 422. */
export function requestOf(draft: FormDraft): DeploymentRequest {
  const analysis = analysisOf(draft.analysis);
  const body: DeploymentRequest = {
    workload: { kind: "Deployment", namespace: draft.namespace.trim(), name: draft.name.trim() },
    strategy: draft.strategy,
    images: { [draft.container.trim()]: draft.image.trim() },
    reason: draft.reason.trim() || null,
    progress_deadline_seconds: 600,
  };
  if (draft.strategy === "canary") {
    body.canary = {
      steps: draft.steps.map((s, i) => ({
        weight: s.weight,
        pause_seconds: s.pauseSeconds,
        manual_promotion: s.manual,
        // the analysis gates the last step before promotion, where it protects the most traffic
        analysis: i === draft.steps.length - 1 ? analysis : null,
      })),
    };
  } else if (draft.strategy === "blue-green") {
    body.blue_green = {
      active_service: draft.activeService.trim(),
      pre_promotion_analysis: analysis,
      auto_promote: true,
      scale_down_delay_seconds: 30,
    };
  } else if (draft.strategy === "rolling") {
    body.analysis = analysis;
  }
  return body;
}

/** The workload a rollout concerns, from its key `Kind/namespace/name`. */
export function workloadOf(key: string): { kind: string; namespace: string; name: string } {
  const [kind = "", namespace = "", name = ""] = key.split("/");
  return { kind, namespace, name };
}

/** The same rollout requested again (a new request id), e.g. after a failed analysis was fixed. */
export function retryOf(rollout: Rollout): DeploymentRequest {
  const { kind, namespace, name } = workloadOf(rollout.workload);
  return {
    workload: { kind: kind as DeploymentRequest["workload"]["kind"], namespace, name },
    progress_deadline_seconds: 600,
    strategy: rollout.strategy as DeploymentRequest["strategy"],
    images: rollout.images ?? {},
    canary: rollout.canary ?? null,
    blue_green: rollout.blue_green ?? null,
    analysis: rollout.analysis_spec ?? null,
    reason: `retry of ${rollout.request_id}`,
  };
}
