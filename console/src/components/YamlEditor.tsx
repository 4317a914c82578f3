// The YAML editor of the policy and routing pages. CodeMirror is loaded only when a page shows an editor (its own
// chunk, outside the initial bundle); until then, and if it cannot load, a plain textarea does the same job.
import { lazy, Suspense } from "react";
import "./editing.css";

export interface EditorIssue {
  line: number | null;
  message: string;
}

export interface YamlEditorProps {
  value: string;
  onChange: (value: string) => void;
  label: string;
  issues?: EditorIssue[];
  readOnly?: boolean;
  /** Bumped by the caller to move the cursor to `focusLine` (an issue clicked in the list). */
  focusLine?: { line: number; seq: number } | null;
}

const CodeMirrorYaml = lazy(() => import("./CodeMirrorYaml"));

export function PlainYaml({ value, onChange, label, readOnly }: YamlEditorProps) {
  return (
    <textarea
      className="yaml-plain"
      aria-label={label}
      value={value}
      readOnly={readOnly}
      spellCheck={false}
      rows={24}
      onChange={(e) => onChange(e.target.value)}
    />
  );
}

export function YamlEditor(props: YamlEditorProps) {
  return (
    <Suspense fallback={<PlainYaml {...props} />}>
      <CodeMirrorYaml {...props} />
    </Suspense>
  );
}
