// Right-sizing recommendations in the caller's namespaces: totals, and per workload the usage behind each one.
import { useTranslation } from "react-i18next";
import { useSearchParams } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { useSession } from "../../../session/SessionProvider";
import { totals } from "../api/money";
import { useRecommendations } from "../api/queries";
import { RecommendationCard } from "../components/RecommendationCard";
import { Totals } from "../components/Totals";
import "../recommendations.css";

const STATUSES = ["open", "applied", "superseded"] as const;

export function RecommendationsPage() {
  const { t } = useTranslation();
  const { can } = useSession();
  const [params, setParams] = useSearchParams();
  const namespace = params.get("namespace") ?? "";
  const status = params.get("status") ?? "open";
  const query = useRecommendations(namespace, status);
  const all = useRecommendations(namespace, "open");
  return (
    <section aria-labelledby="recommendations-title" className="recommendations">
      <h1 id="recommendations-title">{t("recommendations.title")}</h1>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          const data = new FormData(e.currentTarget);
          const next: Record<string, string> = { status: String(data.get("status") ?? "open") };
          const ns = String(data.get("namespace") ?? "").trim();
          if (ns) next.namespace = ns;
          setParams(next);
        }}
      >
        <label>
          {t("recommendations.namespace")}
          <input name="namespace" defaultValue={namespace} placeholder={t("recommendations.allNamespaces")} />
        </label>
        <label>
          {t("recommendations.statusLabel")}
          <select name="status" defaultValue={status}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {t(`recommendations.status.${s}`)}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">{t("recommendations.show")}</button>
      </form>
      {all.data && <Totals {...totals(all.data)} />}
      <h2>{t("recommendations.list")}</h2>
      {!can("operator") && <p>{t("recommendations.viewer")}</p>}
      {query.isPending && <Loading />}
      {query.error && <LoadError error={query.error} />}
      {query.data && query.data.length === 0 && <p>{t("recommendations.none")}</p>}
      {query.data && query.data.length > 0 && (
        <ul className="recommendation-list">
          {query.data.map((item) => (
            <RecommendationCard key={item.id} item={item} canApply={can("operator")} />
          ))}
        </ul>
      )}
    </section>
  );
}
