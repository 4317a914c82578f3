// The entries found, newest first: who did what to which object, the outcome and why; details on demand.
import { useTranslation } from "react-i18next";
import type { AuditEntry } from "../../../api/client";
import { formatTime } from "../../../components/time";

function target(entry: AuditEntry): string {
  const { kind, namespace, name } = entry.target;
  return [kind, namespace, name].filter(Boolean).join("/");
}

export function AuditTable({ entries }: { entries: AuditEntry[] }) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  return (
    <table className="audit-table" aria-labelledby="audit-title">
      <thead>
        <tr>
          <th scope="col">{t("audit.columns.time")}</th>
          <th scope="col">{t("audit.columns.actor")}</th>
          <th scope="col">{t("audit.columns.action")}</th>
          <th scope="col">{t("audit.columns.target")}</th>
          <th scope="col">{t("audit.columns.outcome")}</th>
          <th scope="col">{t("audit.columns.reason")}</th>
        </tr>
      </thead>
      <tbody>
        {entries.map((entry) => (
          <tr key={entry.id} data-entry={entry.id}>
            <td>
              <time dateTime={entry.time}>{formatTime(entry.time, lng)}</time>
            </td>
            <td>
              {entry.actor.id} ({entry.actor.kind})
            </td>
            <td>
              <code>{entry.action}</code>
            </td>
            <td>{target(entry)}</td>
            <td>
              <span className={`badge outcome-${entry.outcome}`}>
                {t(`audit.outcomes.${entry.outcome}`, { defaultValue: entry.outcome })}
              </span>
            </td>
            <td>
              <details>
                <summary>{entry.reason || "—"}</summary>
                <p>{t("audit.details", { action: entry.action, target: target(entry) })}</p>
                {entry.request_id && <p>{t("audit.request", { id: entry.request_id })}</p>}
                {entry.correlation_id && <p>{t("audit.correlation", { id: entry.correlation_id })}</p>}
                <pre>{JSON.stringify(entry.details, null, 2)}</pre>
              </details>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
