// One time axis, changes above and incidents below (Keptn's Bridge sequence view): every point can be reached with
// Tab and opened with Enter; a change opens its diff beside the axis, an incident its own page.
import { useTranslation } from "react-i18next";
import { useNavigate } from "react-router";
import { formatTime } from "../../../components/time";
import { xOf, type Point } from "./axis";

const WIDTH = 1000;
const PAD = 20;
const ROWS = { change: 40, incident: 100 } as const;

export function Timeline({
  points,
  from,
  to,
  onSelect,
}: {
  points: Point[];
  from: string;
  to: string;
  onSelect: (p: Point) => void;
}) {
  const { t, i18n } = useTranslation();
  const navigate = useNavigate();
  const lng = i18n.resolvedLanguage ?? "en";
  const open = (p: Point) => (p.kind === "incident" ? void navigate(`/incidents/${encodeURIComponent(p.id)}`) : onSelect(p));
  const label = (p: Point) =>
    p.kind === "incident"
      ? t("changes.incident", { alertname: p.alertname, summary: p.summary, time: formatTime(p.time, lng) })
      : t("changes.change", { summary: p.summary, time: formatTime(p.time, lng) });
  return (
    <svg
      className="timeline-axis"
      viewBox={`0 0 ${WIDTH + 2 * PAD} 140`}
      width="100%"
      role="group"
      aria-label={t("changes.axis", { from: formatTime(from, lng), to: formatTime(to, lng) })}
    >
      <text x={PAD} y={18} fontSize="14" fill="#1f2937">
        {t("changes.changesRow")}
      </text>
      <text x={PAD} y={78} fontSize="14" fill="#1f2937">
        {t("changes.incidentsRow")}
      </text>
      <line x1={PAD} x2={WIDTH + PAD} y1={130} y2={130} stroke="#4b5563" />
      <text x={PAD} y={126} fontSize="11" fill="#1f2937">
        {formatTime(from, lng)}
      </text>
      <text x={WIDTH + PAD} y={126} fontSize="11" fill="#1f2937" textAnchor="end">
        {formatTime(to, lng)}
      </text>
      {points.map((p) => {
        const x = PAD + xOf(p.time, from, to, WIDTH);
        const y = ROWS[p.kind];
        return (
          <g
            key={`${p.kind}-${p.id}`}
            role="button"
            tabIndex={0}
            aria-label={label(p)}
            data-point={p.kind}
            onClick={() => open(p)}
            onKeyDown={(e) => {
              if (e.key === "Enter" || e.key === " ") {
                e.preventDefault();
                open(p);
              }
            }}
            style={{ cursor: "pointer" }}
          >
            <title>{label(p)}</title>
            {p.kind === "incident" ? (
              <rect x={x - 7} y={y - 7} width={14} height={14} transform={`rotate(45 ${x} ${y})`} fill="#b91c1c" />
            ) : (
              <circle cx={x} cy={y} r={7} fill={p.origin === "observed" ? "#1d4ed8" : "#047857"} />
            )}
          </g>
        );
      })}
    </svg>
  );
}
