// One entry of the tail: the event's type, subject, time and stream sequence, its trace in Jaeger when the caller's
// gateway knows Jaeger and the event carries trace context, and the whole event pretty-printed. An undecodable
// entry says so, with the gateway's reason.
import { useTranslation } from "react-i18next";
import { formatTime } from "../../../components/time";
import { traceIdOf, type TailItem } from "../api/tail";

export function EventCard({ item, jaegerUrl }: { item: TailItem; jaegerUrl: string | null }) {
  const { t, i18n } = useTranslation();
  if (item.kind === "undecodable") {
    return (
      <li className="approval" data-sequence={item.sequence} data-kind="undecodable">
        <p>{t("events.undecodable", { sequence: item.sequence, reason: item.reason })}</p>
      </li>
    );
  }
  const { event } = item;
  const trace = traceIdOf(event);
  return (
    <li className="approval" data-sequence={item.sequence} data-kind="event">
      <p>
        <strong>{event.type}</strong> {t("events.sequence", { sequence: item.sequence })}{" "}
        {event.time && <time dateTime={event.time}>{formatTime(event.time, i18n.resolvedLanguage ?? "en")}</time>}
      </p>
      {event.subject && (
        <p>
          {t("events.subject")}: <code>{event.subject}</code>
        </p>
      )}
      {trace && jaegerUrl && (
        <p>
          <a href={`${jaegerUrl.replace(/\/$/, "")}/trace/${trace}`} target="_blank" rel="noreferrer">
            {t("events.trace")}
          </a>
        </p>
      )}
      <pre tabIndex={0} aria-label={`${event.type} ${item.sequence}`}>
        {JSON.stringify(event, null, 2)}
      </pre>
    </li>
  );
}
