// A container's usage distribution as a bar chart, with the current request and limit and the recommended
// request as vertical lines (KRR's view): pure, builds the ECharts option.
import type { ContainerRecommendation, ResourceUsage } from "./queries";

export type Resource = "cpu" | "memory";

export interface Marks {
  request: number | null;
  limit: number | null;
  recommended: number | null;
}

export function marksOf(rec: ContainerRecommendation | undefined, resource: Resource): Marks {
  const key = resource === "cpu" ? "cpu_millicores" : "memory_bytes";
  return {
    request: rec?.current.requests?.[key] ?? null,
    limit: rec?.current.limits?.[key] ?? null,
    recommended: rec?.recommended.requests?.[key] ?? null,
  };
}

const SCALE: Record<Resource, number> = { cpu: 1, memory: 1024 * 1024 }; // millicores, MiB

export function usageOption(usage: ResourceUsage, marks: Marks, resource: Resource, labels: Record<keyof Marks | "share", string>) {
  const scale = SCALE[resource];
  const unit = resource === "cpu" ? "m" : "MiB";
  const line = (name: keyof Marks, colour: string) =>
    marks[name] == null
      ? []
      : [
          {
            name: labels[name],
            xAxis: (marks[name] as number) / scale,
            lineStyle: { color: colour, type: name === "recommended" ? "solid" : "dashed", width: 2 },
            label: { formatter: `${labels[name]} ${Math.round((marks[name] as number) / scale)}${unit}`, color: colour },
          },
        ];
  const top = Math.max(usage.max, marks.request ?? 0, marks.limit ?? 0, marks.recommended ?? 0) / scale;
  return {
    grid: { left: 48, right: 32, top: 40, bottom: 36 },
    tooltip: { trigger: "item" },
    xAxis: { type: "value", min: 0, max: Math.ceil(top * 1.1) || 1, name: unit },
    yAxis: { type: "value", name: labels.share, axisLabel: { formatter: "{value}%" } },
    series: [
      {
        type: "bar",
        barMinWidth: 3,
        itemStyle: { color: "#5b8fd1" },
        data: usage.buckets.map((b) => [(b.start + b.end) / 2 / scale, Math.round(b.share * 1000) / 10]),
        markLine: {
          symbol: "none",
          data: [...line("request", "#8a6d00"), ...line("limit", "#b3261e"), ...line("recommended", "#1d7a3e")],
        },
      },
    ],
  };
}
