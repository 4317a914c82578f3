// The notifier's routing: the tree in force, its YAML edited with validation (issues at their lines), the diff
// against the version in force or a past one, saved as a version, and the history with rollback.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { ApiError } from "../../../api/client";
import { IssueList } from "../../../components/IssueList";
import { LineDiff } from "../../../components/LineDiff";
import { changedCount, lineDiff } from "../../../components/lineDiff";
import { LoadError, Loading } from "../../../components/QueryState";
import { formatTime } from "../../../components/time";
import { YamlEditor, type EditorIssue } from "../../../components/YamlEditor";
import { useSession } from "../../../session/SessionProvider";
import {
  useFetchRoutesVersion,
  usePutRoutes,
  useRouteTree,
  useRoutesConfig,
  useRoutesVersions,
  useValidateRoutes,
} from "../api/queries";
import { RouteTree } from "../components/RouteTree";

type Issue = EditorIssue & { path: string };

export function RoutingPage() {
  const { t, i18n } = useTranslation();
  const { can, session } = useSession();
  const tree = useRouteTree();
  const config = useRoutesConfig();
  const versions = useRoutesVersions();
  const [draft, setDraft] = useState<string | null>(null);
  const [issues, setIssues] = useState<Issue[]>([]);
  const [jump, setJump] = useState<{ line: number; seq: number } | null>(null);
  const [against, setAgainst] = useState<number | null>(null);
  const [comment, setComment] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  const validate = useValidateRoutes();
  const put = usePutRoutes();
  const other = useRoutesConfig(against);
  const fetchVersion = useFetchRoutesVersion();
  const canEdit = can("operator");
  const canSave = can("admin") && Boolean(session?.identity.namespaces.includes("*"));

  if (config.isPending) return <Loading />;
  if (config.error) return <LoadError error={config.error} />;
  const inForce = config.data;
  const text = draft ?? inForce.yaml;
  const base = against !== null && other.data ? other.data : inForce;

  const check = async () => {
    const verdict = await validate.mutateAsync(text);
    setIssues((verdict.issues ?? []).map((i) => ({ line: i.line ?? null, message: i.message, path: i.path })));
    return verdict.valid;
  };
  const save = async (yaml: string, why: string, rolledBackFrom?: number) => {
    try {
      const stored = await put.mutateAsync({ yaml, expectedVersion: inForce.version, comment: why });
      setDraft(null);
      setIssues([]);
      setComment("");
      setAgainst(null);
      setNotice(
        rolledBackFrom !== undefined
          ? t("routing.rolledBack", { from: rolledBackFrom, version: stored.version })
          : t("routing.saved", { version: stored.version }),
      );
    } catch (error) {
      setNotice(
        error instanceof ApiError && error.status === 409
          ? t("routing.conflict")
          : t("routing.failed", { reason: (error as Error).message }),
      );
    }
  };
  const diff = lineDiff(base.yaml, text);
  const changes = changedCount(diff);

  return (
    <section aria-labelledby="routing-title">
      <h1 id="routing-title">{t("routing.title")}</h1>
      <section aria-labelledby="tree-title">
        <h2 id="tree-title">{t("routing.tree")}</h2>
        <p>{t("routing.treeHelp")}</p>
        {tree.isPending && <Loading />}
        {tree.error && <LoadError error={tree.error} />}
        {tree.data && <RouteTree tree={tree.data} />}
      </section>

      <h2>{t("routing.version", { version: inForce.version })}</h2>
      <div aria-live="polite">{notice && <p role="status">{notice}</p>}</div>
      <YamlEditor
        value={text}
        onChange={(v) => {
          setDraft(v);
          setNotice(null);
        }}
        label={t("routing.editor")}
        issues={issues}
        readOnly={!canEdit}
        focusLine={jump}
      />
      <IssueList
        issues={issues}
        title={t("routing.issues")}
        format={(i) =>
          i.line !== null
            ? t("routing.issue", { line: i.line, message: i.message })
            : t("routing.issueNoLine", { path: (i as Issue).path, message: i.message })
        }
        onJump={(line) => setJump({ line, seq: (jump?.seq ?? 0) + 1 })}
      />
      {validate.error && <p role="alert">{t("routing.failed", { reason: validate.error.message })}</p>}
      {canEdit && (
        <div className="toolbar">
          <button type="button" onClick={() => void check()} disabled={validate.isPending}>
            {t("routing.validate")}
          </button>
          {validate.data?.valid && issues.length === 0 && <span role="status">{t("routing.valid")}</span>}
          <button type="button" onClick={() => setDraft(null)} disabled={draft === null}>
            {t("routing.reset")}
          </button>
        </div>
      )}
      <h2>{t("routing.diffTitle", { version: base.version })}</h2>
      <LineDiff
        lines={diff}
        caption={
          changes === 0
            ? t("routing.diffNone", { version: base.version })
            : t("routing.diffCount", { count: changes, version: base.version })
        }
      />
      {canSave ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void check().then((ok) => (ok ? save(text, comment) : undefined));
          }}
        >
          <label>
            {t("routing.comment")}
            <input value={comment} maxLength={2000} onChange={(e) => setComment(e.target.value)} />
          </label>
          <button type="submit" disabled={put.isPending || draft === null}>
            {t("routing.save")}
          </button>
        </form>
      ) : (
        <p>{t("routing.adminsOnly")}</p>
      )}

      <section aria-labelledby="routing-history">
        <h2 id="routing-history">{t("routing.history")}</h2>
        {versions.error && <LoadError error={versions.error} />}
        {versions.data && (
          <table>
            <caption>{t("routing.historyCaption")}</caption>
            <thead>
              <tr>
                <th scope="col">{t("routing.columns.version")}</th>
                <th scope="col">{t("routing.columns.author")}</th>
                <th scope="col">{t("routing.columns.comment")}</th>
                <th scope="col">{t("routing.columns.source")}</th>
                <th scope="col">{t("routing.columns.created")}</th>
                <th scope="col">
                  <span className="visually-hidden">{t("routing.diff", { version: "" })}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {versions.data.map((v) => (
                <tr key={v.version}>
                  <th scope="row">
                    {v.version} {v.active && <span className="badge">{t("routing.current")}</span>}
                  </th>
                  <td>{v.author}</td>
                  <td>{v.comment ?? ""}</td>
                  <td>{v.source}</td>
                  <td>{formatTime(v.created_at, i18n.language)}</td>
                  <td className="actions">
                    <button type="button" onClick={() => setAgainst(v.active ? null : v.version)}>
                      {t("routing.diff", { version: v.version })}
                    </button>
                    {canSave && !v.active && (
                      <button
                        type="button"
                        disabled={put.isPending}
                        onClick={() =>
                          void fetchVersion(v.version).then((yaml) =>
                            save(yaml, t("routing.rollbackComment", { version: v.version }), v.version),
                          )
                        }
                      >
                        {t("routing.rollback", { version: v.version })}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </section>
  );
}
