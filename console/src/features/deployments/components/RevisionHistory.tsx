// A workload's revisions (what changed between them: strategy, images, env, resources, command and args) and its
// rollouts, newest first.
import { useTranslation } from "react-i18next";
import { Link } from "react-router";
import { formatTime } from "../../../components/time";
import type { Rollout, Revision } from "../api/queries";
import { revisionChanges, type RevisionChange } from "../api/revisions";

export function RevisionHistory({ workload, revisions, rollouts }: { workload: string; revisions: Revision[]; rollouts: Rollout[] }) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const none = t("deployments.history.none");
  const describe = (c: RevisionChange) => {
    if (c.field === "container") {
      return t(c.to === null ? "deployments.history.containerRemoved" : "deployments.history.containerAdded", {
        container: c.container,
      });
    }
    return t(`deployments.history.changes.${c.field}`, {
      container: c.container,
      key: c.key,
      from: c.from ?? none,
      to: c.to ?? none,
    });
  };
  return (
    <section aria-labelledby="history-title" className="panel">
      <h2 id="history-title">{t("deployments.history.title", { workload })}</h2>
      <h3>{t("deployments.history.revisions")}</h3>
      {revisions.length === 0 && <p>{t("deployments.history.none")}</p>}
      <ol className="revisions">
        {revisionChanges(revisions).map(({ revision, changes }) => (
          <li key={`${revision.deployment_id}-${revision.revision ?? "?"}`}>
            <strong>
              {revision.revision != null
                ? t("deployments.history.revision", { revision: revision.revision })
                : t("deployments.history.unknown")}
            </strong>{" "}
            {t("deployments.history.outcome", { outcome: revision.outcome, when: formatTime(revision.recorded_at, lng) })}
            <ul>
              {changes.length === 0 && <li>{t("deployments.history.unchanged")}</li>}
              {changes.map((c) => (
                <li key={`${c.container ?? ""}/${c.field}/${c.key ?? ""}`} data-field={c.field}>
                  <code>{describe(c)}</code>
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ol>
      <h3>{t("deployments.history.rollouts")}</h3>
      <ul className="history-rollouts">
        {rollouts.map((r) => (
          <li key={r.request_id}>
            <Link to={`/deployments/${r.request_id}`}>{formatTime(r.requested_at, lng)}</Link> · {r.strategy} ·{" "}
            {t(`deployments.states.${r.state}`, r.state)}
          </li>
        ))}
      </ul>
    </section>
  );
}
