// Where a point sits on the time axis: pure, so it is tested without a browser.
export type Point =
  | { kind: "change"; id: string; time: string; summary: string; origin: string; detail: Record<string, unknown> }
  | { kind: "incident"; id: string; time: string; summary: string; alertname: string; severity: string };

/** The x of `time` on an axis `width` wide from `from` to `to` (clamped to the axis). */
export function xOf(time: string, from: string, to: string, width: number): number {
  const start = Date.parse(from);
  const span = Math.max(1, Date.parse(to) - start);
  const at = (Date.parse(time) - start) / span;
  return Math.round(Math.min(1, Math.max(0, at)) * width * 10) / 10;
}
