import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { renderWith } from "../../../test/render";
import { xOf, type Point } from "./axis";
import { Timeline } from "./Timeline";

const from = "2026-01-01T00:00:00Z";
const to = "2026-01-01T10:00:00Z";
const points: Point[] = [
  { kind: "change", id: "c1", time: "2026-01-01T05:00:00Z", summary: "image app: 1.41 -> 1.42", origin: "observed", detail: {} },
  { kind: "incident", id: "i1", time: "2026-01-01T05:10:00Z", summary: "api restarts", alertname: "CrashLoop", severity: "critical" },
];

test("a point's place on the axis, clamped to it", () => {
  expect(xOf("2026-01-01T05:00:00Z", from, to, 1000)).toBe(500);
  expect(xOf("2025-12-31T00:00:00Z", from, to, 1000)).toBe(0);
  expect(xOf("2026-01-02T00:00:00Z", from, to, 1000)).toBe(1000);
});

test("every point is reached with Tab and a change opens with Enter", async () => {
  const opened: Point[] = [];
  renderWith(<Timeline points={points} from={from} to={to} onSelect={(p) => opened.push(p)} />);
  const change = screen.getByRole("button", { name: /image app: 1.41 -> 1.42/ });
  expect(screen.getByRole("button", { name: /Incident CrashLoop: api restarts/ })).toBeInTheDocument();
  await userEvent.tab();
  expect(change).toHaveFocus();
  await userEvent.keyboard("{Enter}");
  expect(opened.map((p) => p.id)).toEqual(["c1"]);
});
