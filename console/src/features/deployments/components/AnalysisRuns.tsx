// Each analysis run: its measurements against the threshold as a chart (ECharts, loaded lazily) and as text.
import { useMemo } from "react";
import { useTranslation } from "react-i18next";
import { EChart } from "../../../components/EChart";
import { chartOption, conditionText, metricSpecs, pointsOf } from "../api/analysis";
import type { AnalysisResult, Rollout } from "../api/queries";

function Run({ result, rollout }: { result: AnalysisResult; rollout: Rollout }) {
  const { t } = useTranslation();
  const metric = metricSpecs(rollout).get(result.metric);
  const condition = conditionText(metric) ?? "";
  const threshold = t("deployments.analysis.threshold");
  const option = useMemo(() => chartOption(result, metric, { threshold }), [result, metric, threshold]);
  const outcome = (o: string) => t(`deployments.analysis.outcomes.${o}`, o);
  return (
    <li className={`run run-${result.outcome}`} data-metric={result.metric} data-outcome={result.outcome}>
      <h3>
        {result.metric}: {outcome(result.outcome)}
      </h3>
      <p>
        {condition} · {t("deployments.analysis.counts", { ...result })}
      </p>
      {result.message && <p>{result.message}</p>}
      <EChart option={option} label={t("deployments.analysis.chart", { metric: result.metric, condition })} />
      <ol className="measurements">
        {pointsOf(result).map((p) => (
          <li key={p.index} className={`m-${p.outcome}`}>
            {t("deployments.analysis.measurement", {
              index: p.index,
              value: p.value ?? p.error ?? t("deployments.analysis.noData"),
              outcome: outcome(p.outcome),
            })}
          </li>
        ))}
      </ol>
    </li>
  );
}

export function AnalysisRuns({ rollout }: { rollout: Rollout }) {
  const { t } = useTranslation();
  const runs = rollout.analysis ?? [];
  return (
    <section aria-labelledby="analysis-title" className="panel">
      <h2 id="analysis-title">{t("deployments.analysis.title")}</h2>
      {runs.length === 0 ? (
        <p>{t("deployments.analysis.none")}</p>
      ) : (
        <ul className="runs">
          {runs.map((r) => (
            <Run key={r.metric} result={r} rollout={rollout} />
          ))}
        </ul>
      )}
    </section>
  );
}
