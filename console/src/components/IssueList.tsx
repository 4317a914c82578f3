// A validator's issues as a list under the editor: each names its line and moves the editor's cursor there.
// The caller formats them (shared components hold no strings of their own).
import type { EditorIssue } from "./YamlEditor";

export function IssueList({
  issues,
  title,
  format,
  onJump,
}: {
  issues: EditorIssue[];
  title: string;
  format: (issue: EditorIssue) => string;
  onJump: (line: number) => void;
}) {
  if (issues.length === 0) return null;
  return (
    <div role="alert" className="issues">
      <p>{title}</p>
      <ul>
        {issues.map((issue, i) => (
          <li key={i}>
            {issue.line !== null ? (
              <button type="button" className="link" onClick={() => onJump(issue.line!)}>
                {format(issue)}
              </button>
            ) : (
              format(issue)
            )}
          </li>
        ))}
      </ul>
    </div>
  );
}
