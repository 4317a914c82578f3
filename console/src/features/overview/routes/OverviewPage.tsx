import { useTranslation } from "react-i18next";
import { Link } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { useOverview } from "../api/queries";

export function OverviewPage() {
  const { t } = useTranslation();
  const query = useOverview();
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">{t("overview.title")}</h1>
      {query.isPending && <Loading />}
      {query.error && <LoadError error={query.error} />}
      {query.data && (
        <>
          <h2>{t("overview.firing")}</h2>
          <dl className="figures" data-testid="firing-by-severity">
            {(["critical", "warning", "info"] as const).map((s) => (
              <div key={s}>
                <dt>
                  <Link to={`/incidents?status=firing&severity=${s}`}>{t(`severity.${s}`)}</Link>
                </dt>
                <dd data-severity={s}>{query.data.bySeverity[s]}</dd>
              </div>
            ))}
          </dl>
          <h2>{t("overview.last24h")}</h2>
          <dl className="figures">
            <div>
              <dt>{t("overview.mttr")}</dt>
              <dd>{query.data.mttrSeconds === null ? "—" : `${Math.round(query.data.mttrSeconds / 60)} min`}</dd>
            </div>
            <div>
              <dt>{t("overview.actions")}</dt>
              <dd>{query.data.actions}</dd>
            </div>
            <div>
              <dt>{t("overview.deferred")}</dt>
              <dd>{query.data.deferred}</dd>
            </div>
            <div>
              <dt>{t("overview.escalated")}</dt>
              <dd>{query.data.escalated}</dd>
            </div>
            <div>
              <dt>{t("overview.rollouts")}</dt>
              <dd>{query.data.rolloutsInProgress}</dd>
            </div>
          </dl>
        </>
      )}
    </section>
  );
}
