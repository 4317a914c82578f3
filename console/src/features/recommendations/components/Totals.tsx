// What the open recommendations would save or add per month, for the cluster and per namespace.
import { useTranslation } from "react-i18next";
import { money, type Totals as T } from "../api/money";

export function Totals({ cluster, namespaces }: { cluster: T; namespaces: T[] }) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const m = (n: number, c: string) => money(n, c, lng);
  return (
    <section aria-labelledby="totals-title">
      <h2 id="totals-title">{t("recommendations.totals.title")}</h2>
      <dl className="figures">
        <div>
          <dt>{t("recommendations.totals.saved")}</dt>
          <dd data-testid="total-saved">{m(cluster.saved, cluster.currency)}</dd>
        </div>
        <div>
          <dt>{t("recommendations.totals.risked")}</dt>
          <dd>{m(cluster.risked, cluster.currency)}</dd>
        </div>
        <div>
          <dt>{t("recommendations.totals.open")}</dt>
          <dd>{cluster.count}</dd>
        </div>
      </dl>
      {namespaces.length > 0 && (
        <table className="totals">
          <caption>{t("recommendations.totals.byNamespace")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("recommendations.totals.namespace")}</th>
              <th scope="col">{t("recommendations.totals.open")}</th>
              <th scope="col">{t("recommendations.totals.now")}</th>
              <th scope="col">{t("recommendations.totals.saved")}</th>
              <th scope="col">{t("recommendations.totals.risked")}</th>
            </tr>
          </thead>
          <tbody>
            {namespaces.map((n) => (
              <tr key={n.key}>
                <th scope="row">{n.key}</th>
                <td>{n.count}</td>
                <td>{m(n.monthlyNow, n.currency)}</td>
                <td>{m(n.saved, n.currency)}</td>
                <td>{m(n.risked, n.currency)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
