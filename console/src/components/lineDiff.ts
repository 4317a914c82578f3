// A line diff (longest common subsequence), enough for policy and routing documents of a few hundred lines:
// pure, so the diff view and its tests agree on what changed.
export type DiffLine = { kind: "same" | "added" | "removed"; text: string; oldLine?: number; newLine?: number };

export function lineDiff(before: string, after: string): DiffLine[] {
  const a = before.split("\n");
  const b = after.split("\n");
  const n = a.length;
  const m = b.length;
  const width = m + 1;
  // lcs[i * width + j]: the length of the longest common subsequence of a[i..] and b[j..]
  const lcs = new Uint32Array((n + 1) * width);
  const at = (i: number, j: number) => lcs[i * width + j] ?? 0;
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] = a[i] === b[j] ? at(i + 1, j + 1) + 1 : Math.max(at(i + 1, j), at(i, j + 1));
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push({ kind: "same", text: a[i] ?? "", oldLine: i + 1, newLine: j + 1 });
      i++;
      j++;
    } else if (i < n && (j === m || at(i + 1, j) >= at(i, j + 1))) {
      // a removal first when both keep the common subsequence: a changed line reads "- old, + new"
      out.push({ kind: "removed", text: a[i] ?? "", oldLine: i + 1 });
      i++;
    } else {
      out.push({ kind: "added", text: b[j] ?? "", newLine: j + 1 });
      j++;
    }
  }
  return out;
}

export function changedCount(lines: DiffLine[]): number {
  return lines.filter((l) => l.kind !== "same").length;
}
