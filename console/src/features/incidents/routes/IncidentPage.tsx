import { useTranslation } from "react-i18next";
import { Link, useParams } from "react-router";
import { ApiError } from "../../../api/client";
import { SeverityBadge, StatusBadge } from "../../../components/Badges";
import { LoadError, Loading } from "../../../components/QueryState";
import { useSession } from "../../../session/SessionProvider";
import { useIncident } from "../api/queries";
import { IncidentTimeline } from "../components/IncidentTimeline";

/** Jaeger's search for the incident's trace: every span of the chain carries its correlation id. */
export function traceLink(jaeger: string, incidentId: string, source: string): string {
  const service = source === "alertmanager" ? "opsbus-gateway" : "opsbus-watcher";
  const tags = JSON.stringify({ "messaging.message.conversation_id": incidentId });
  return `${jaeger.replace(/\/$/, "")}/search?service=${service}&tags=${encodeURIComponent(tags)}`;
}

export function IncidentPage() {
  const { t } = useTranslation();
  const { id = "" } = useParams();
  const { session } = useSession();
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
          <a href={traceLink(session.jaeger_url, incident.id, incident.source)} target="_blank" rel="noreferrer">
            {t("incident.trace")}
          </a>
        </p>
      )}
      <IncidentTimeline incident={incident} />
    </article>
  );
}
