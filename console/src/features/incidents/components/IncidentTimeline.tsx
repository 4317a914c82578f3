import { useTranslation } from "react-i18next";
import type { Incident } from "../../../api/client";
import { formatTime } from "../../../components/time";
import { Diagnosis } from "./Diagnosis";
import { Evidence } from "./Evidence";
import { timelineOf, type TimelineEntry } from "./timeline";

function Title({ entry }: { entry: TimelineEntry }) {
  const { t } = useTranslation();
  const verb = t(`verbs.${entry.verb}`, entry.verb);
  switch (entry.kind) {
    case "fired":
      return <>{t("incident.fired")}</>;
    case "resolved":
      return <>{t("incident.resolved")}</>;
    case "diagnosis":
      return <>{t("diagnosis.title", { revision: entry.revision ?? 1 })}</>;
    case "notification":
      return <>{t("incident.notification", { verb })}</>;
    case "approval":
      return (
        <>
          {t("incident.approval")}: {verb}
        </>
      );
    default:
      return <>{t("incident.recovery", { verb, action: entry.action ?? "" })}</>;
  }
}

export function IncidentTimeline({ incident }: { incident: Incident }) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const entries = timelineOf(incident);
  return (
    <section aria-labelledby="timeline-title">
      <h2 id="timeline-title">{t("incident.timeline")}</h2>
      <ol className="timeline">
        {entries.map((entry) => (
          <li key={entry.key} className={`entry entry-${entry.kind}`} data-kind={entry.kind} data-verb={entry.verb}>
            <time dateTime={entry.time}>{formatTime(entry.time, lng)}</time>
            <h3>
              <Title entry={entry} />
            </h3>
            {entry.target && <p className="target">{entry.target}</p>}
            {entry.who && <p className="who">{entry.who}</p>}
            {entry.outcome && (
              <p>
                {t("incident.outcome")}: {t(`verbs.${entry.outcome}`, entry.outcome)}
              </p>
            )}
            {entry.reason && (
              <p>
                {t("incident.reason")}: {entry.reason}
              </p>
            )}
            {entry.kind === "fired" && incident.alert && <Evidence alert={incident.alert} />}
            {entry.kind === "diagnosis" && incident.diagnosis && <Diagnosis event={incident.diagnosis} />}
          </li>
        ))}
      </ol>
      {incident.recoveries.length === 0 && <p>{t("incident.noSteps")}</p>}
    </section>
  );
}
