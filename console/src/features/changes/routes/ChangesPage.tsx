// Change timeline for a cluster, namespace or workload (kept in the URL): the axis, the opened change, the list.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Link, useSearchParams } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { formatTime } from "../../../components/time";
import { WINDOWS, useTimeline, type Scope, type Window } from "../api/queries";
import type { Point } from "../components/axis";
import { ChangeDetail } from "../components/ChangeDetail";
import { Timeline } from "../components/Timeline";

const TEXT = ["cluster", "namespace", "workload"] as const;

function scopeOf(params: URLSearchParams): Scope {
  const window = params.get("window");
  return {
    cluster: params.get("cluster") || undefined,
    namespace: params.get("namespace") || undefined,
    workload: params.get("workload") || undefined,
    window: window && window in WINDOWS ? (window as Window) : "24h",
  };
}

export function ChangesPage() {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const [params, setParams] = useSearchParams();
  const scope = scopeOf(params);
  const [draft, setDraft] = useState<Scope>(scope);
  const [selected, setSelected] = useState<Extract<Point, { kind: "change" }> | null>(null);
  const query = useTimeline(scope);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setParams(Object.fromEntries(Object.entries(draft).filter(([, v]) => v)) as Record<string, string>);
  };
  const points = query.data?.points ?? [];
  const select = (p: Point) => p.kind === "change" && setSelected(p);
  return (
    <section aria-labelledby="changes-title">
      <h1 id="changes-title">{t("changes.title")}</h1>
      <form className="filters" aria-label={t("changes.filters")} onSubmit={submit}>
        {TEXT.map((field) => (
          <label key={field}>
            {t(`changes.${field}`)}
            <input name={field} value={draft[field] ?? ""} onChange={(e) => setDraft({ ...draft, [field]: e.target.value || undefined })} />
          </label>
        ))}
        <label>
          {t("changes.window")}
          <select value={draft.window} onChange={(e) => setDraft({ ...draft, window: e.target.value as Window })}>
            {(Object.keys(WINDOWS) as Window[]).map((w) => (
              <option key={w} value={w}>
                {t(`changes.windows.${w}`)}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">{t("changes.show")}</button>
      </form>
      {query.isPending && <Loading />}
      {query.error && <LoadError error={query.error} />}
      {query.data && (
        <>
          <p role="status">
            {points.length === 0
              ? t("changes.none")
              : t("changes.counts", {
                  changes: points.filter((p) => p.kind === "change").length,
                  incidents: points.filter((p) => p.kind === "incident").length,
                })}
          </p>
          {query.data.fallback && <p>{t("changes.fallback")}</p>}
          <Timeline points={points} from={query.data.from} to={query.data.to} onSelect={select} />
          {selected && <ChangeDetail point={selected} onClose={() => setSelected(null)} />}
          <h2 id="changes-list-title">{t("changes.list")}</h2>
          <ol aria-labelledby="changes-list-title">
            {[...points].reverse().map((p) => (
              <li key={`${p.kind}-${p.id}`}>
                <time dateTime={p.time}>{formatTime(p.time, lng)}</time>{" "}
                {p.kind === "incident" ? (
                  <Link to={`/incidents/${encodeURIComponent(p.id)}`}>
                    {t("changes.incidentsRow")}: {p.alertname} — {p.summary}
                  </Link>
                ) : (
                  <button type="button" className="link" onClick={() => setSelected(p)}>
                    {p.summary}
                  </button>
                )}
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
