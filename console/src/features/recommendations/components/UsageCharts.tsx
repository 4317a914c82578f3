// Per container: CPU and memory usage distributions against the current request, limit and the recommendation.
import { useMemo } from "react";
import { useTranslation } from "react-i18next";
import { EChart } from "../../../components/EChart";
import { cpu, memory } from "../api/money";
import type { ContainerRecommendation, ContainerUsage } from "../api/queries";
import { marksOf, usageOption, type Resource } from "../api/usageChart";

function ResourceChart({ usage, rec, resource }: { usage: ContainerUsage; rec?: ContainerRecommendation; resource: Resource }) {
  const { t } = useTranslation();
  const data = usage[resource];
  const marks = marksOf(rec, resource);
  const fmt = resource === "cpu" ? cpu : memory;
  const labels = useMemo(
    () => ({
      request: t("recommendations.usage.request"),
      limit: t("recommendations.usage.limit"),
      recommended: t("recommendations.usage.recommended"),
      share: t("recommendations.usage.share"),
    }),
    [t],
  );
  const option = useMemo(() => usageOption(data, marks, resource, labels), [data, marks.request, marks.limit, marks.recommended, resource, labels]); // eslint-disable-line react-hooks/exhaustive-deps
  const resourceName = t(`recommendations.usage.${resource}`);
  return (
    <figure className="usage">
      <figcaption>
        {resourceName}: {t("recommendations.usage.percentiles", { p50: fmt(data.p50), p95: fmt(data.p95), p99: fmt(data.p99) })}
        {" · "}
        {t("recommendations.usage.marks", {
          request: fmt(marks.request),
          limit: fmt(marks.limit),
          recommended: fmt(marks.recommended),
        })}
      </figcaption>
      {data.buckets.length > 0 ? (
        <EChart option={option} label={t("recommendations.usage.chart", { container: usage.container, resource: resourceName })} height={220} />
      ) : (
        <p>{t("recommendations.usage.noData")}</p>
      )}
    </figure>
  );
}

export function UsageCharts({ usage, containers }: { usage: ContainerUsage[]; containers: ContainerRecommendation[] }) {
  const { t } = useTranslation();
  if (usage.length === 0) return <p>{t("recommendations.usage.none")}</p>;
  return (
    <div className="usage-grid">
      {usage.map((u) => {
        const rec = containers.find((c) => c.container === u.container);
        return (
          <section key={u.container} aria-label={t("recommendations.usage.container", { container: u.container })}>
            <h4>{t("recommendations.usage.container", { container: u.container })}</h4>
            <ResourceChart usage={u} rec={rec} resource="cpu" />
            <ResourceChart usage={u} rec={rec} resource="memory" />
          </section>
        );
      })}
    </div>
  );
}
