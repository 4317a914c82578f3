import { useTranslation } from "react-i18next";
import { useSearchParams } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { useIncidents, type IncidentFilters as Filters } from "../api/queries";
import { IncidentFilters } from "../components/IncidentFilters";
import { IncidentList } from "../components/IncidentList";

const FIELDS = ["status", "severity", "namespace", "alertname"] as const;

export function IncidentsPage() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const filters: Filters = Object.fromEntries(
    FIELDS.flatMap((f) => (params.get(f) ? [[f, params.get(f)]] : [])),
  ) as Filters;
  const query = useIncidents(filters);
  const incidents = query.data?.pages.flatMap((p) => p.items) ?? [];
  const apply = (next: Filters) =>
    setParams(Object.fromEntries(Object.entries(next).filter(([, v]) => v)) as Record<string, string>);
  return (
    <section aria-labelledby="incidents-title">
      <h1 id="incidents-title">{t("incidents.title")}</h1>
      <IncidentFilters key={params.toString()} value={filters} onChange={apply} />
      {query.isPending && <Loading />}
      {query.error && <LoadError error={query.error} />}
      {query.data && (
        <>
          <p className="count">{t("incidents.count", { count: incidents.length })}</p>
          <IncidentList incidents={incidents} />
          {query.hasNextPage && (
            <button type="button" onClick={() => void query.fetchNextPage()} disabled={query.isFetchingNextPage}>
              {t("incidents.more")}
            </button>
          )}
        </>
      )}
    </section>
  );
}
