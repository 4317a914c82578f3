import { useTranslation } from "react-i18next";
import { Link, useParams } from "react-router";
import { ApiError } from "../../../api/client";
import { SeverityBadge, StatusBadge } from "../../../components/Badges";
import { LoadError, Loading } from "../../../components/QueryState";
import { useSession } from "../../../session/SessionProvider";
import { useIncident } from "../api/queries";
import { IncidentTimeline } from "../components/IncidentTimeline";

/**
 * Where Jaeger shows the incident's trace: the trace of the alert (detection, recovery, notification) when the
 * gateway stored its id; otherwise Jaeger's search for the spans that carry the incident's correlation id.
 */
export function traceLink(jaeger: string, incident: { id: string; source: string; trace_id?: string | null }): string {
  const base = jaeger.replace(/\/$/, "");
  if (incident.trace_id) return `${base}/trace/${encodeURIComponent(incident.trace_id)}`;
  const service = incident.source === "alertmanager" ? "opsbus-gateway" : "opsbus-watcher";
  const tags = JSON.stringify({ "messaging.message.conversation_id": incident.id });
  return `${base}/search?service=${service}&tags=${encodeURIComponent(tags)}`;
}

/** The silences page, its form prefilled with the incident's labels as matchers (Alertmanager's "silence"). */
export function silenceLink(incident: { id: string; labels: Record<string, string> }): string {
  const params = new URLSearchParams({ incident: incident.id });
  for (const [name, value] of Object.entries(incident.labels)) {
    params.append("matcher", `${name}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`);
  }
  return `/silences?${params.toString()}`;
}

export function IncidentPage() {
  const { t } = useTranslation();
  const { id = "" } = useParams();
  const { session, can } = useSession();
  const query = useIncident(id);
  if (query.isPending) return <Loading />;
  if (query.error) {
    if (query.error instanceof ApiError && query.error.status === 404) return <p role="alert">{t("incident.notFound")}</p>;
    return <LoadError error={query.error} />;
  }
  const incident = query.data;
  return (
    <article aria-labelledby="incident-title">
      <p>
        <Link to="/incidents">{t("incident.back")}</Link>
      </p>
      <h1 id="incident-title">
        {incident.alertname}: {incident.summary}
      </h1>
      <p className="facts">
        <SeverityBadge severity={incident.severity} /> <StatusBadge status={incident.status} />{" "}
        <span>
          {incident.cluster}/{incident.namespace ?? "—"} · {incident.subject}
        </span>
      </p>
      {session?.jaeger_url && (
        <p>
          <a href={traceLink(session.jaeger_url, incident)} target="_blank" rel="noreferrer">
            {t("incident.trace")}
          </a>
        </p>
      )}
      {can("operator") && incident.status === "firing" && (
        <p>
          <Link to={silenceLink(incident)}>{t("silences.silenceThis")}</Link>
        </p>
      )}
      <IncidentTimeline incident={incident} />
    </article>
  );
}
