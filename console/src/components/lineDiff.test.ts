import { changedCount, lineDiff } from "./lineDiff";

test("a changed line is one removal and one addition, the rest unchanged", () => {
  const diff = lineDiff("a\nb\nc", "a\nB\nc");
  expect(diff.map((l) => `${l.kind}:${l.text}`)).toEqual(["same:a", "removed:b", "added:B", "same:c"]);
  expect(changedCount(diff)).toBe(2);
});

test("identical documents have no change; insertions keep their line numbers", () => {
  expect(changedCount(lineDiff("x\ny", "x\ny"))).toBe(0);
  const diff = lineDiff("x\ny", "x\nnew\ny");
  expect(diff.filter((l) => l.kind === "added")).toEqual([{ kind: "added", text: "new", newLine: 2 }]);
});
