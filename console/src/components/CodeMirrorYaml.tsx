// CodeMirror 6 with YAML highlighting and the validator's issues as diagnostics on their lines (gutter marker and
// underline). Tab is left to the page (focus moves on, as everywhere else); Escape then Tab also leaves.
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { Annotation, EditorState } from "@codemirror/state";
import { EditorView, highlightActiveLine, keymap, lineNumbers } from "@codemirror/view";
import { useEffect, useRef } from "react";
import type { EditorIssue, YamlEditorProps } from "./YamlEditor";

/** Marks a change made from outside (a save, a rollback): it is not reported back as an edit. */
const external = Annotation.define<boolean>();

function diagnostics(view: EditorView, issues: EditorIssue[]): Diagnostic[] {
  const doc = view.state.doc;
  return issues.map((issue) => {
    const line = doc.line(Math.min(Math.max(issue.line ?? 1, 1), doc.lines));
    const text = line.text;
    const start = line.from + (text.length - text.trimStart().length);
    return { from: start, to: Math.max(line.to, start), severity: "error", message: issue.message };
  });
}

export default function CodeMirrorYaml({ value, onChange, label, issues = [], readOnly, focusLine }: YamlEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const changed = useRef(onChange);
  useEffect(() => {
    changed.current = onChange;
  }, [onChange]);

  useEffect(() => {
    const editor = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          lineNumbers(),
          history(),
          highlightActiveLine(),
          keymap.of([...defaultKeymap, ...historyKeymap]),
          yaml(),
          lintGutter(),
          EditorState.readOnly.of(Boolean(readOnly)),
          EditorView.contentAttributes.of({ "aria-label": label, "aria-multiline": "true" }),
          EditorView.updateListener.of((update) => {
            const outside = update.transactions.some((tr) => tr.annotation(external));
            if (update.docChanged && !outside) changed.current(update.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = editor;
    return () => editor.destroy();
    // the editor is made once; value changes from outside are applied below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const editor = view.current;
    if (editor && editor.state.doc.toString() !== value) {
      editor.dispatch({
        changes: { from: 0, to: editor.state.doc.length, insert: value },
        annotations: external.of(true),
      });
    }
  }, [value]);

  useEffect(() => {
    const editor = view.current;
    if (editor) editor.dispatch(setDiagnostics(editor.state, diagnostics(editor, issues)));
  }, [issues, value]);

  useEffect(() => {
    const editor = view.current;
    if (editor && focusLine) {
      const line = editor.state.doc.line(Math.min(Math.max(focusLine.line, 1), editor.state.doc.lines));
      editor.dispatch({ selection: { anchor: line.from }, scrollIntoView: true });
      editor.focus();
    }
  }, [focusLine]);

  return <div className="yaml-editor" ref={host} data-testid="yaml-editor" />;
}
