import { chartOption, conditionText, metricSpecs, pointsOf } from "./analysis";
import type { Rollout } from "./queries";
import { rollout } from "./fixtures";

test("the threshold a metric had to meet comes from the step that ran it", () => {
  const specs = metricSpecs(rollout());
  expect(conditionText(specs.get("success-rate"))).toBe("success-rate >= 0.95");
  const r: Rollout = { ...rollout(), canary: null, analysis_spec: null };
  expect(metricSpecs(r).size).toBe(0);
});

test("each measurement is a point coloured by outcome, the threshold a line", () => {
  const run = rollout().analysis[0]!;
  expect(pointsOf(run).map((p) => [p.value, p.outcome])).toEqual([
    [0.42, "failed"],
    [0.41, "failed"],
  ]);
  const option = chartOption(run, metricSpecs(rollout()).get("success-rate"), { threshold: "threshold" });
  const series = option.series[0]!;
  expect(series.markLine?.data).toEqual([{ yAxis: 0.95 }]);
  const { min, max } = option.yAxis;
  expect(min).toBeLessThan(0.41);
  expect(max).toBeGreaterThan(0.95); // the threshold is drawn even far above the measurements
  expect(series.data.map((d) => d.itemStyle.color)).toEqual(["#b3261e", "#b3261e"]);
});
