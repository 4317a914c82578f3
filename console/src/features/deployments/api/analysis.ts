// An analysis run as a chart: each measurement of a metric against the threshold it had to meet, coloured by
// outcome, so "why did it abort" is seen at a glance (Argo Rollouts' analysis view). Pure: builds the data
// and the ECharts option, draws nothing.
import type { AnalysisMetric, AnalysisResult, Rollout } from "./queries";

/** Every metric the rollout's request names (background, canary steps, blue-green), by name. */
export function metricSpecs(rollout: Rollout): Map<string, AnalysisMetric> {
  const specs = new Map<string, AnalysisMetric>();
  const add = (spec: { metrics: AnalysisMetric[] } | null | undefined) =>
    spec?.metrics.forEach((m) => specs.set(m.name, m));
  add(rollout.analysis_spec);
  rollout.canary?.steps.forEach((s) => add(s.analysis));
  add(rollout.blue_green?.pre_promotion_analysis);
  add(rollout.blue_green?.post_promotion_analysis);
  return specs;
}

export interface Point {
  index: number;
  value: number | null;
  outcome: string;
  error: string | null;
}

export function pointsOf(result: AnalysisResult): Point[] {
  return (result.measurements ?? []).map((m, i) => ({
    index: i + 1,
    value: m.value ?? null,
    outcome: m.outcome,
    error: m.error ?? null,
  }));
}

/** "value >= 0.95" as it reads in the spec. */
export function conditionText(metric: AnalysisMetric | undefined): string | null {
  if (!metric) return null;
  const c = metric.success_condition;
  return `${metric.name} ${c.operator} ${c.threshold}`;
}

export const OUTCOME_COLOURS: Record<string, string> = {
  successful: "#1d7a3e",
  failed: "#b3261e",
  inconclusive: "#8a6d00",
  running: "#0b5cad",
};

/** The y range holding every measurement and the threshold, with a margin. */
export function valueRange(points: Point[], threshold: number | undefined): { min: number; max: number } {
  const values = [...points.map((p) => p.value), threshold].filter((v): v is number => v != null);
  if (values.length === 0) return { min: 0, max: 1 };
  const low = Math.min(...values);
  const high = Math.max(...values);
  const margin = (high - low) * 0.15 || Math.abs(high) * 0.1 || 1;
  return { min: Number((low - margin).toPrecision(3)), max: Number((high + margin).toPrecision(3)) };
}

export function chartOption(result: AnalysisResult, metric: AnalysisMetric | undefined, labels: { threshold: string }) {
  const points = pointsOf(result);
  const threshold = metric?.success_condition.threshold;
  return {
    grid: { left: 48, right: 24, top: 24, bottom: 32 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: points.map((p) => `#${p.index}`) },
    // the threshold is always in view, however far the measurements are from it
    yAxis: { type: "value", ...valueRange(points, threshold) },
    series: [
      {
        name: result.metric,
        type: "line",
        data: points.map((p) => ({ value: p.value, itemStyle: { color: OUTCOME_COLOURS[p.outcome] ?? "#444" } })),
        symbolSize: 10,
        lineStyle: { color: "#6b7785" },
        markLine:
          threshold === undefined
            ? undefined
            : {
                symbol: "none",
                lineStyle: { color: "#b3261e", type: "dashed" },
                label: { formatter: `${labels.threshold} ${metric?.success_condition.operator} ${threshold}` },
                data: [{ yAxis: threshold }],
              },
      },
    ],
  };
}
