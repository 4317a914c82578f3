// One ECharts chart, loaded lazily: ECharts (about 300 KB gzipped) is fetched only by the pages that draw a
// chart, never in the initial bundle (DESIGN.md section 9: 250 KB). The chart is an image for screen readers,
// named by `label`; every page shows the same numbers as text beside it.
import { useEffect, useRef } from "react";

export type ChartOption = Record<string, unknown>;

async function loadECharts() {
  const [core, charts, components, renderers] = await Promise.all([
    import("echarts/core"),
    import("echarts/charts"),
    import("echarts/components"),
    import("echarts/renderers"),
  ]);
  core.use([
    charts.BarChart,
    charts.LineChart,
    charts.ScatterChart,
    components.GridComponent,
    components.TooltipComponent,
    components.LegendComponent,
    components.MarkLineComponent,
    components.MarkAreaComponent,
    renderers.SVGRenderer,
  ]);
  return core;
}

export function EChart({ option, label, height = 260 }: { option: ChartOption; label: string; height?: number }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let disposed = false;
    let dispose = () => {};
    const node = ref.current;
    if (!node) return;
    loadECharts()
      .then((echarts) => {
        if (disposed) return;
        const chart = echarts.init(node, undefined, { renderer: "svg" });
        chart.setOption({ animation: false, ...option });
        const resize = () => chart.resize();
        window.addEventListener("resize", resize);
        dispose = () => {
          window.removeEventListener("resize", resize);
          chart.dispose();
        };
      })
      .catch(() => {
        /* no chart (e.g. no layout engine in tests): the numbers are shown as text beside it */
      });
    return () => {
      disposed = true;
      dispose();
    };
  }, [option]);
  return <div ref={ref} className="chart" role="img" aria-label={label} style={{ height }} data-testid="chart" />;
}
