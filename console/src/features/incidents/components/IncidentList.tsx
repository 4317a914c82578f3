// The incident list, virtualized (@tanstack/react-virtual): 10,000 rows cost the DOM of the few on screen.
import { useVirtualizer } from "@tanstack/react-virtual";
import { useRef } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";
import type { Incident } from "../../../api/client";
import { SeverityBadge, StatusBadge } from "../../../components/Badges";
import { formatTime } from "../../../components/time";

const ROW = 44;

export function IncidentList({ incidents }: { incidents: Incident[] }) {
  const { t, i18n } = useTranslation();
  const parent = useRef<HTMLDivElement>(null);
  const rows = useVirtualizer({
    count: incidents.length,
    getScrollElement: () => parent.current,
    estimateSize: () => ROW,
    overscan: 10,
    initialRect: { width: 1000, height: 600 },
    getItemKey: (index) => incidents[index]?.id ?? index,
  });
  const lng = i18n.resolvedLanguage ?? "en";
  return (
    <div className="incident-list">
      <div className="incident-row incident-head" aria-hidden="true">
        <span>{t("incidents.columns.severity")}</span>
        <span>{t("incidents.columns.alert")}</span>
        <span>{t("incidents.columns.namespace")}</span>
        <span>{t("incidents.columns.status")}</span>
        <span>{t("incidents.columns.started")}</span>
      </div>
      <div ref={parent} className="incident-scroll" data-testid="incident-scroll">
        <ul aria-label={t("incidents.title")} style={{ height: rows.getTotalSize() }}>
          {rows.getVirtualItems().map((row) => {
            const incident = incidents[row.index];
            if (!incident) return null;
            return (
              <li
                key={row.key}
                className="incident-row"
                data-incident={incident.id}
                style={{ transform: `translateY(${row.start}px)`, height: ROW }}
              >
                <SeverityBadge severity={incident.severity} />
                <Link to={`/incidents/${encodeURIComponent(incident.id)}`}>
                  {incident.alertname}: {incident.summary}
                </Link>
                <span>{incident.namespace ?? "—"}</span>
                <StatusBadge status={incident.status} />
                <span>{formatTime(incident.starts_at, lng)}</span>
              </li>
            );
          })}
        </ul>
      </div>
    </div>
  );
}
