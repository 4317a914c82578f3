// Audit search: filters in the URL, pages by keyset ("Older entries"), and the same search exported as CSV. A search
// of several conditions looks through a bounded stretch of the trail per page, so a page may come back short, or
// empty, with older entries still to search: the button stays while the gateway gives a cursor.
import { useTranslation } from "react-i18next";
import { useSearchParams } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { FIELDS, exportUrl, useAuditSearch, type AuditFilters as Filters } from "../api/queries";
import { AuditFilters } from "../components/AuditFilters";
import { AuditTable } from "../components/AuditTable";

export function AuditPage() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const filters: Filters = Object.fromEntries(
    FIELDS.flatMap((f) => (params.get(f) ? [[f, params.get(f)]] : [])),
  ) as Filters;
  const query = useAuditSearch(filters);
  const entries = query.data?.pages.flatMap((p) => p.items) ?? [];
  const apply = (next: Filters) =>
    setParams(Object.fromEntries(Object.entries(next).filter(([, v]) => v)) as Record<string, string>);
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">{t("audit.title")}</h1>
      <AuditFilters key={params.toString()} value={filters} onChange={apply} />
      <p>
        <a href={exportUrl(filters)} download="opsbus-audit.csv" aria-describedby="audit-export-help">
          {t("audit.export")}
        </a>{" "}
        <span id="audit-export-help">{t("audit.exportHelp")}</span>
      </p>
      {query.isPending && <Loading />}
      {query.error && <LoadError error={query.error} />}
      {query.data && (
        <>
          <p className="count" role="status">
            {entries.length > 0
              ? t("audit.shown", { count: entries.length })
              : query.hasNextPage
                ? t("audit.emptySoFar")
                : t("audit.empty")}
          </p>
          {entries.length > 0 && <AuditTable entries={entries} />}
          {query.hasNextPage ? (
            <button type="button" onClick={() => void query.fetchNextPage()} disabled={query.isFetchingNextPage}>
              {t("audit.more")}
            </button>
          ) : (
            entries.length > 0 && <p>{t("audit.end")}</p>
          )}
        </>
      )}
    </section>
  );
}
