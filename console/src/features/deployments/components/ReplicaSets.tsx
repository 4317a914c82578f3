// The rollout's new and old ReplicaSets side by side: images and ready pods, as they are now.
import { useTranslation } from "react-i18next";
import type { ReplicaSet } from "../api/queries";

export function ReplicaSets({ sets, error }: { sets: ReplicaSet[] | undefined; error: Error | null }) {
  const { t } = useTranslation();
  return (
    <section aria-labelledby="rs-title" className="panel">
      <h2 id="rs-title">{t("deployments.replicaSets.title")}</h2>
      {error && <p>{t("deployments.replicaSets.unavailable", { reason: error.message })}</p>}
      {sets && sets.length === 0 && <p>{t("deployments.replicaSets.none")}</p>}
      {sets && sets.length > 0 && (
        <ul className="replicasets">
          {sets.map((rs) => (
            <li key={rs.name} className={`rs rs-${rs.role}`} data-role={rs.role}>
              <h3>
                {t(`deployments.replicaSets.role.${rs.role}`, rs.role)}: {rs.name}
              </h3>
              <p>
                {t("deployments.replicaSets.owner", { deployment: rs.deployment })}
                {rs.revision != null && ` · r${rs.revision}`}
              </p>
              <p>{t("deployments.replicaSets.pods", { ready: rs.ready ?? 0, replicas: rs.replicas ?? 0 })}</p>
              <ul className="images">
                {Object.entries(rs.images ?? {}).map(([c, image]) => (
                  <li key={c}>
                    <code>
                      {c}: {image}
                    </code>
                  </li>
                ))}
              </ul>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
