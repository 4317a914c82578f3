// One rollout, live: strategy, steps and weights, analysis runs against their thresholds, the new and old
// ReplicaSets, promote/abort/retry, and the workload's history (revisions and what changed between them).
import { useTranslation } from "react-i18next";
import { useParams } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { formatTime } from "../../../components/time";
import { useSession } from "../../../session/SessionProvider";
import { isActive, useCommand, useHistory, useReplicaSets, useRequestDeployment, useRollout } from "../api/queries";
import { retryOf, workloadOf } from "../api/requests";
import { AnalysisRuns } from "../components/AnalysisRuns";
import { CanarySteps } from "../components/CanarySteps";
import { ReplicaSets } from "../components/ReplicaSets";
import { RevisionHistory } from "../components/RevisionHistory";
import { RolloutActions } from "../components/RolloutActions";
import "../deployments.css";

export function RolloutPage() {
  const { id = "" } = useParams();
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const { can } = useSession();
  const status = useRollout(id);
  const rollout = status.data?.rollout ?? null;
  const active = isActive(status.data?.state);
  const sets = useReplicaSets(id, active);
  const { namespace, name } = workloadOf(status.data?.workload ?? "");
  const history = useHistory(namespace, name, status.data?.state ?? "");
  const command = useCommand(id);
  const retry = useRequestDeployment();
  if (status.isPending) return <Loading />;
  if (status.error) return <LoadError error={status.error} />;
  const data = status.data;
  return (
    <section aria-labelledby="rollout-title" className="deployments rollout" data-state={data.state}>
      <h1 id="rollout-title">{t("deployments.rollout.title", { workload: data.workload })}</h1>
      <dl className="figures summary">
        <div>
          <dt>{t("deployments.rollout.state")}</dt>
          <dd data-testid="rollout-state">{t(`deployments.states.${data.state}`, data.state)}</dd>
        </div>
        <div>
          <dt>{t("deployments.rollout.strategy")}</dt>
          <dd>{rollout?.strategy ?? "-"}</dd>
        </div>
        <div>
          <dt>{t("deployments.rollout.phase")}</dt>
          <dd>{rollout?.phase ?? "-"}</dd>
        </div>
      </dl>
      {rollout && (
        <>
          {rollout.revision != null && (
            <p>{t("deployments.rollout.revision", { revision: rollout.revision, previous: rollout.previous_revision ?? "-" })}</p>
          )}
          <p>
            {t("deployments.rollout.requested", { when: formatTime(rollout.requested_at, lng) })}
            {rollout.finished_at && ` · ${t("deployments.rollout.finished", { when: formatTime(rollout.finished_at, lng) })}`}
            {active && ` · ${t("deployments.rollout.live")}`}
          </p>
          {rollout.request_reason && (
            <p>
              {t("deployments.rollout.reason")}: {rollout.request_reason}
            </p>
          )}
          {rollout.message && (
            <p className={`outcome outcome-${data.state}`} data-testid="rollout-message">
              {t("deployments.rollout.message")}: {rollout.message}
            </p>
          )}
          <p>
            {t("deployments.rollout.images")}:{" "}
            {Object.entries(rollout.images ?? {}).map(([c, image]) => (
              <code key={c}>
                {c}={image}{" "}
              </code>
            ))}
          </p>
          <RolloutActions
            rollout={rollout}
            canAct={can("operator")}
            busy={command.isPending || retry.isPending}
            onCommand={(kind, reason) => command.mutate({ kind, reason })}
            onRetry={() => retry.mutate(retryOf(rollout))}
            retriedId={retry.data?.request_id}
          />
          <div aria-live="polite">
            {command.error && <p role="alert">{command.error.message}</p>}
            {retry.error && <p role="alert">{retry.error.message}</p>}
          </div>
          {rollout.strategy === "canary" && <CanarySteps rollout={rollout} />}
          <AnalysisRuns rollout={rollout} />
        </>
      )}
      <ReplicaSets sets={sets.data} error={sets.error} />
      {history.data && (
        <RevisionHistory workload={data.workload} revisions={[...history.data.revisions]} rollouts={[...history.data.rollouts]} />
      )}
    </section>
  );
}
