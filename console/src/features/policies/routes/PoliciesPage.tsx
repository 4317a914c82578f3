// Remediation policies: edit the YAML (the healer validates, issues at their lines), see the diff against the
// version in force or any past one, preview the edit on past incidents, save it as a version, roll back.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { ApiError } from "../../../api/client";
import { IssueList } from "../../../components/IssueList";
import { LineDiff } from "../../../components/LineDiff";
import { changedCount, lineDiff } from "../../../components/lineDiff";
import { LoadError, Loading } from "../../../components/QueryState";
import { YamlEditor, type EditorIssue } from "../../../components/YamlEditor";
import { useSession } from "../../../session/SessionProvider";
import {
  useCurrentPolicies,
  useFetchPolicyVersion,
  usePolicyVersion,
  usePolicyVersions,
  usePreviewPolicy,
  usePutPolicies,
  useValidatePolicy,
  type PolicyIssue,
} from "../api/queries";
import { PreviewTable } from "../components/PreviewTable";
import { VersionHistory } from "../components/VersionHistory";

function editorIssues(issues: PolicyIssue[]): (EditorIssue & { path: string })[] {
  return issues.map((i) => ({ line: i.line ?? null, message: i.message, path: i.path }));
}

export function PoliciesPage() {
  const { t } = useTranslation();
  const { can, session } = useSession();
  const current = useCurrentPolicies();
  const versions = usePolicyVersions();
  const [draft, setDraft] = useState<string | null>(null);
  const [issues, setIssues] = useState<(EditorIssue & { path: string })[]>([]);
  const [jump, setJump] = useState<{ line: number; seq: number } | null>(null);
  const [against, setAgainst] = useState<number | null>(null);
  const [comment, setComment] = useState("");
  const [limit, setLimit] = useState(20);
  const [notice, setNotice] = useState<string | null>(null);
  const validate = useValidatePolicy();
  const preview = usePreviewPolicy();
  const put = usePutPolicies();
  const other = usePolicyVersion(against);
  const fetchVersion = useFetchPolicyVersion();

  const canEdit = can("operator");
  const canSave = can("admin") && Boolean(session?.identity.namespaces.includes("*"));
  if (current.isPending) return <Loading />;
  if (current.error) return <LoadError error={current.error} />;
  const inForce = current.data;
  const text = draft ?? inForce.document;
  const base = against !== null && other.data ? other.data : inForce;

  const edit = (value: string) => {
    setDraft(value);
    setNotice(null);
  };
  const check = async () => {
    const verdict = await validate.mutateAsync(text);
    setIssues(editorIssues(verdict.issues));
    return verdict.valid;
  };
  const runPreview = async () => {
    const answer = await preview.mutateAsync({ document: text, limit });
    setIssues(editorIssues(answer.issues ?? []));
  };
  const save = async (document: string, expectedVersion: number, why: string, rolledBackFrom?: number) => {
    try {
      const stored = await put.mutateAsync({ document, expectedVersion, comment: why });
      setDraft(null);
      setIssues([]);
      setComment("");
      setAgainst(null);
      setNotice(
        rolledBackFrom !== undefined
          ? t("policies.history.rolledBack", { from: rolledBackFrom, version: stored.version })
          : t("policies.save.saved", { version: stored.version }),
      );
    } catch (error) {
      setNotice(
        error instanceof ApiError && error.status === 409
          ? t("policies.conflict")
          : t("policies.failed", { reason: (error as Error).message }),
      );
    }
  };
  const submit = async () => {
    if (await check()) await save(text, inForce.version, comment);
  };
  const rollBack = async (version: number) => {
    const old = await fetchVersion(version);
    await save(old, inForce.version, t("policies.history.rollbackComment", { version }), version);
  };

  const diff = lineDiff(base.document, text);
  const diffCaption =
    changedCount(diff) === 0
      ? t("policies.diffNone", { version: base.version })
      : t("policies.diffCount", { count: changedCount(diff), version: base.version });
  const failure = validate.error ?? preview.error;

  return (
    <section aria-labelledby="policies-title" className="policies">
      <h1 id="policies-title">{t("policies.title")}</h1>
      <p>{t("policies.intro")}</p>
      <p>{t("policies.version", { version: inForce.version })}</p>
      <div aria-live="polite">{notice && <p role="status">{notice}</p>}</div>

      <YamlEditor
        value={text}
        onChange={edit}
        label={t("policies.editor")}
        issues={issues}
        readOnly={!canEdit}
        focusLine={jump}
      />
      <IssueList
        issues={issues}
        title={t("policies.issues")}
        format={(i) =>
          i.line !== null
            ? t("policies.issue", { line: i.line, message: i.message })
            : t("policies.issueNoLine", { path: (i as { path?: string }).path || "<root>", message: i.message })
        }
        onJump={(line) => setJump({ line, seq: (jump?.seq ?? 0) + 1 })}
      />
      {failure && <p role="alert">{t("policies.failed", { reason: failure.message })}</p>}
      {canEdit && (
        <div className="toolbar">
          <button type="button" onClick={() => void check()} disabled={validate.isPending}>
            {t("policies.validate")}
          </button>
          {validate.data?.valid && issues.length === 0 && (
            <span role="status">
              {t("policies.valid", {
                count: validate.data.policies?.length ?? 0,
                names: (validate.data.policies ?? []).join(", "),
              })}
            </span>
          )}
          <button type="button" onClick={() => edit(inForce.document)} disabled={draft === null}>
            {t("policies.reset")}
          </button>
        </div>
      )}

      <h2>{t("policies.diffTitle", { version: base.version })}</h2>
      <LineDiff lines={diff} caption={diffCaption} />

      {canEdit && (
        <section aria-labelledby="preview-title">
          <h2 id="preview-title">{t("policies.preview.title")}</h2>
          <p>{t("policies.preview.help")}</p>
          <div className="toolbar">
            <label>
              {t("policies.preview.limit")}{" "}
              <input
                type="number"
                min={1}
                max={200}
                value={limit}
                onChange={(e) => setLimit(Math.min(200, Math.max(1, Number(e.target.value) || 1)))}
              />
            </label>
            <button type="button" onClick={() => void runPreview()} disabled={preview.isPending}>
              {t("policies.preview.run")}
            </button>
          </div>
          {preview.data?.valid && <PreviewTable preview={preview.data} />}
        </section>
      )}

      <section aria-labelledby="save-title">
        <h2 id="save-title">{t("policies.save.title")}</h2>
        {canSave ? (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void submit();
            }}
          >
            <label>
              {t("policies.save.comment")}
              <input
                value={comment}
                onChange={(e) => setComment(e.target.value)}
                aria-describedby="policy-comment-help"
                maxLength={1024}
              />
            </label>
            <small id="policy-comment-help">{t("policies.save.commentHelp")}</small>
            <button type="submit" disabled={put.isPending || draft === null}>
              {t("policies.save.submit")}
            </button>
          </form>
        ) : (
          <p>{t("policies.save.adminsOnly")}</p>
        )}
      </section>

      <section aria-labelledby="history-title">
        <h2 id="history-title">{t("policies.history.title")}</h2>
        {versions.isPending && <Loading />}
        {versions.error && <LoadError error={versions.error} />}
        {versions.data && (
          <VersionHistory
            versions={versions.data}
            canRollBack={canSave}
            busy={put.isPending}
            onDiff={(v) => setAgainst(v === inForce.version ? null : v)}
            onRollBack={(v) => void rollBack(v)}
          />
        )}
      </section>
    </section>
  );
}
