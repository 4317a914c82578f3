// The canary's steps as the deployer runs them: weight, pause, manual gate, analysis; the current one marked.
// With a traffic router (HTTPRoute, VirtualService) the weights are shares of traffic and the route's current
// split is shown.
import { useTranslation } from "react-i18next";
import type { Rollout } from "../api/queries";

function stepState(rollout: Rollout, index: number): "done" | "current" | "pending" {
  const step = rollout.step ?? null;
  if (rollout.state === "succeeded") return "done";
  if (step === null) return "pending";
  if (index + 1 < step) return "done";
  return index + 1 === step ? "current" : "pending";
}

export function CanarySteps({ rollout }: { rollout: Rollout }) {
  const { t } = useTranslation();
  const steps = rollout.canary?.steps ?? [];
  const router = rollout.canary?.router ?? null;
  const weight = rollout.canary_weight ?? 0;
  return (
    <section aria-labelledby="steps-title" className="panel">
      <h2 id="steps-title">{t("deployments.steps.title")}</h2>
      {router && (
        <p>
          {t("deployments.steps.traffic", {
            kind: router.kind,
            name: router.name,
            canary: weight,
            stable: 100 - weight,
          })}
        </p>
      )}
      {steps.length === 0 ? (
        <p>{t("deployments.steps.none")}</p>
      ) : (
        <ol className="steps">
          {steps.map((s, i) => {
            const state = stepState(rollout, i);
            return (
              <li key={i} className={`step step-${state}`} aria-current={state === "current" ? "step" : undefined}>
                <strong>
                  {t(router ? "deployments.steps.trafficWeight" : "deployments.steps.weight", { weight: s.weight })}
                </strong>
                <div className="weight" aria-hidden="true">
                  <span style={{ width: `${s.weight}%` }} />
                </div>
                {s.pause_seconds != null && <span>{t("deployments.steps.pause", { seconds: s.pause_seconds })}</span>}
                {s.manual_promotion && <span>{t("deployments.steps.manual")}</span>}
                {s.analysis && (
                  <span>
                    {t("deployments.steps.analysis", { metrics: s.analysis.metrics.map((m) => m.name).join(", ") })}
                  </span>
                )}
                <em>
                  {state === "current"
                    ? t("deployments.steps.current", { stage: rollout.stage ?? rollout.phase ?? "" })
                    : t(`deployments.steps.${state}`)}
                </em>
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}
