// What the detector saw: the last log lines of failing containers and the Kubernetes events.
import { useTranslation } from "react-i18next";

interface AlertEvidence {
  evidence?: {
    logs?: { container: string; previous?: boolean; lines: string[] }[];
    events?: { reason?: string; message?: string; count?: number }[];
  };
}

export function Evidence({ alert }: { alert: Record<string, unknown> }) {
  const { t } = useTranslation();
  const evidence = (alert as AlertEvidence).evidence ?? {};
  const logs = evidence.logs ?? [];
  const events = evidence.events ?? [];
  if (logs.length === 0 && events.length === 0) return null;
  return (
    <div className="evidence">
      <h4>{t("incident.evidence")}</h4>
      {logs.map((log) => (
        <figure key={log.container}>
          <figcaption>{t("incident.logs", { container: log.container })}</figcaption>
          <pre tabIndex={0}>{log.lines.join("\n")}</pre>
        </figure>
      ))}
      {events.length > 0 && (
        <>
          <h5>{t("incident.events")}</h5>
          <ul>
            {events.map((e, i) => (
              <li key={i}>
                {e.reason}: {e.message}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
