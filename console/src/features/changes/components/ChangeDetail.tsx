// The change a point opened: its summary, origin, who made it, and the fields before and after.
import { useEffect, useRef } from "react";
import { useTranslation } from "react-i18next";
import { formatTime } from "../../../components/time";
import type { Point } from "./axis";

type Diff = { path: string; before?: string | null; after?: string | null };

export function ChangeDetail({ point, onClose }: { point: Extract<Point, { kind: "change" }>; onClose: () => void }) {
  const { t, i18n } = useTranslation();
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [point.id]);
  const diff = (Array.isArray(point.detail.diff) ? point.detail.diff : []) as Diff[];
  const actor = point.detail.actor as { kind?: string; id?: string } | undefined;
  return (
    <aside className="approval" aria-labelledby="change-detail-title" data-testid="change-detail">
      <h2 id="change-detail-title" tabIndex={-1} ref={heading}>
        {t("changes.selected")}: {point.summary}
      </h2>
      <p>
        {formatTime(point.time, i18n.resolvedLanguage ?? "en")} ·{" "}
        {t(`changes.origins.${point.origin}`, { defaultValue: point.origin })}
        {actor?.id && ` · ${t("changes.actor")} ${actor.id}`}
      </p>
      {diff.length > 0 && (
        <table aria-label={t("changes.diff")}>
          <thead>
            <tr>
              <th scope="col">{t("changes.diff")}</th>
              <th scope="col">{t("changes.before")}</th>
              <th scope="col">{t("changes.after")}</th>
            </tr>
          </thead>
          <tbody>
            {diff.map((d) => (
              <tr key={d.path}>
                <td>
                  <code>{d.path}</code>
                </td>
                <td>{d.before ?? "—"}</td>
                <td>{d.after ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <button type="button" onClick={onClose}>
        {t("changes.close")}
      </button>
    </aside>
  );
}
