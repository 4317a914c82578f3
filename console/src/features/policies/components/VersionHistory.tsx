// The version history: each version with who saved it and why, a diff against the editor, and (admins) a
// rollback, which saves that version's document as a new version.
import { useTranslation } from "react-i18next";
import { formatTime } from "../../../components/time";
import type { PolicyVersion } from "../api/queries";

export function VersionHistory({
  versions,
  canRollBack,
  busy,
  onDiff,
  onRollBack,
}: {
  versions: PolicyVersion[];
  canRollBack: boolean;
  busy?: boolean;
  onDiff: (version: number) => void;
  onRollBack: (version: number) => void;
}) {
  const { t, i18n } = useTranslation();
  return (
    <table className="versions">
      <caption>{t("policies.history.caption")}</caption>
      <thead>
        <tr>
          <th scope="col">{t("policies.history.version")}</th>
          <th scope="col">{t("policies.history.author")}</th>
          <th scope="col">{t("policies.history.comment")}</th>
          <th scope="col">{t("policies.history.created")}</th>
          <th scope="col">
            <span className="visually-hidden">{t("policies.history.diff", { version: "" })}</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {versions.map((v) => (
          <tr key={v.version}>
            <th scope="row">
              {v.version} {v.current && <span className="badge">{t("policies.history.current")}</span>}
            </th>
            <td>{v.author}</td>
            <td>{v.comment ?? ""}</td>
            <td>{formatTime(v.created_at, i18n.language)}</td>
            <td className="actions">
              <button type="button" onClick={() => onDiff(v.version)}>
                {t("policies.history.diff", { version: v.version })}
              </button>
              {canRollBack && !v.current && (
                <button type="button" disabled={busy} onClick={() => onRollBack(v.version)}>
                  {t("policies.history.rollback", { version: v.version })}
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
