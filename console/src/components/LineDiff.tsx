// The diff of two YAML documents as text a screen reader can read: "+" added, "-" removed, unchanged lines
// folded around the changes.
// Its caption comes from the caller (shared components hold no strings of their own).
import { changedCount, type DiffLine } from "./lineDiff";

const CONTEXT = 3;

function visible(lines: DiffLine[]): (DiffLine | null)[] {
  const keep = lines.map((l) => l.kind !== "same");
  const near = lines.map((_, i) => {
    for (let d = -CONTEXT; d <= CONTEXT; d++) if (keep[i + d]) return true;
    return false;
  });
  const out: (DiffLine | null)[] = [];
  lines.forEach((l, i) => {
    if (near[i]) out.push(l);
    else if (out[out.length - 1] !== null) out.push(null);
  });
  return out;
}

export function LineDiff({ lines, caption }: { lines: DiffLine[]; caption: string }) {
  const changes = changedCount(lines);
  return (
    <figure className="diff">
      <figcaption>{caption}</figcaption>
      {changes > 0 && (
        <pre tabIndex={0} aria-label={caption}>
          {visible(lines).map((l, i) =>
            l === null ? (
              <span key={i} className="diff-fold">
                {"…\n"}
              </span>
            ) : (
              <span key={i} className={`diff-${l.kind}`}>
                {l.kind === "added" ? "+ " : l.kind === "removed" ? "- " : "  "}
                {l.text}
                {"\n"}
              </span>
            ),
          )}
        </pre>
      )}
    </figure>
  );
}
