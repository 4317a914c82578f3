// The latest rollouts in the caller's namespaces (filter in the URL) and, for operators, the request form.
import { useTranslation } from "react-i18next";
import { Link, useSearchParams } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { formatTime } from "../../../components/time";
import { useSession } from "../../../session/SessionProvider";
import { useRecent, useRequestDeployment } from "../api/queries";
import { DeployForm } from "../components/DeployForm";
import "../deployments.css";

export function DeploymentsPage() {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const { can } = useSession();
  const [params, setParams] = useSearchParams();
  const namespace = params.get("namespace") ?? "";
  const query = useRecent(namespace);
  const request = useRequestDeployment();
  return (
    <section aria-labelledby="deployments-title" className="deployments">
      <h1 id="deployments-title">{t("deployments.title")}</h1>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          const value = String(new FormData(e.currentTarget).get("namespace") ?? "").trim();
          setParams(value ? { namespace: value } : {});
        }}
      >
        <label>
          {t("deployments.namespace")}
          <input name="namespace" defaultValue={namespace} placeholder={t("deployments.allNamespaces")} />
        </label>
        <button type="submit">{t("deployments.show")}</button>
      </form>
      <h2>{t("deployments.recent")}</h2>
      {query.isPending && <Loading />}
      {query.error && <LoadError error={query.error} />}
      {query.data && query.data.length === 0 && <p>{t("deployments.none")}</p>}
      {query.data && query.data.length > 0 && (
        <table className="rollouts">
          <thead>
            <tr>
              <th scope="col">{t("deployments.columns.workload")}</th>
              <th scope="col">{t("deployments.columns.strategy")}</th>
              <th scope="col">{t("deployments.columns.state")}</th>
              <th scope="col">{t("deployments.columns.requested")}</th>
            </tr>
          </thead>
          <tbody>
            {query.data.map((r) => (
              <tr key={r.request_id} data-request={r.request_id}>
                <td>
                  <Link to={`/deployments/${r.request_id}`}>{r.workload}</Link>
                </td>
                <td>{r.strategy}</td>
                <td>
                  <span className={`badge state-${r.state}`}>{t(`deployments.states.${r.state}`, r.state)}</span>
                </td>
                <td>{formatTime(r.requested_at, lng)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {can("operator") && (
        <>
          <DeployForm busy={request.isPending} onSubmit={request.mutate} />
          <div aria-live="polite">
            {request.error && <p role="alert">{request.error.message}</p>}
            {request.data && (
              <p role="status">
                {t("deployments.form.accepted")}
                <Link to={`/deployments/${request.data.request_id}`}>{t("deployments.form.follow")}</Link>
              </p>
            )}
          </div>
        </>
      )}
    </section>
  );
}
