// Silences, active and pending first, each expirable by an operator.
import { useTranslation } from "react-i18next";
import { formatTime } from "../../../components/time";
import type { Silence } from "../api/queries";

const ORDER: Record<string, number> = { active: 0, pending: 1, expired: 2 };

export function SilenceList({
  silences,
  canExpire,
  busy,
  onExpire,
}: {
  silences: Silence[];
  canExpire: boolean;
  busy?: boolean;
  onExpire: (id: string) => void;
}) {
  const { t, i18n } = useTranslation();
  if (silences.length === 0) return <p>{t("silences.none")}</p>;
  const sorted = [...silences].sort((a, b) => (ORDER[a.state] ?? 3) - (ORDER[b.state] ?? 3));
  return (
    <table className="silences">
      <caption>{t("silences.caption")}</caption>
      <thead>
        <tr>
          <th scope="col">{t("silences.columns.matchers")}</th>
          <th scope="col">{t("silences.columns.state")}</th>
          <th scope="col">{t("silences.columns.ends")}</th>
          <th scope="col">{t("silences.columns.by")}</th>
          <th scope="col">{t("silences.columns.comment")}</th>
          {canExpire && (
            <th scope="col">
              <span className="visually-hidden">{t("silences.expire")}</span>
            </th>
          )}
        </tr>
      </thead>
      <tbody>
        {sorted.map((s) => (
          <tr key={s.id}>
            <td>
              <code>{s.matchers.join(", ")}</code>
            </td>
            <td>{t(`silences.state.${s.state}`)}</td>
            <td>{formatTime(s.ends_at, i18n.language)}</td>
            <td>{s.created_by}</td>
            <td>{s.comment}</td>
            {canExpire && (
              <td>
                {s.state !== "expired" && (
                  <button
                    type="button"
                    disabled={busy}
                    aria-label={t("silences.expireLabel", { id: s.id })}
                    onClick={() => onExpire(s.id)}
                  >
                    {t("silences.expire")}
                  </button>
                )}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
