// Console sessions (who is signed in, with what, until when) and the sign-in history from the audit trail.
import { useTranslation } from "react-i18next";
import type { AuditEntry } from "../../../api/client";
import { formatTime } from "../../../components/time";
import type { SessionInfo } from "../api/queries";

function sessionState(s: SessionInfo, now: Date): "live" | "ended" | "expired" {
  if (s.ended_at) return "ended";
  return new Date(s.expires_at) <= now ? "expired" : "live";
}

export function SessionTable({
  sessions,
  onEnd,
  now = new Date(),
}: {
  sessions: SessionInfo[];
  onEnd: (s: SessionInfo) => void;
  now?: Date;
}) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  if (sessions.length === 0) return <p>{t("keys.noSessions")}</p>;
  return (
    <table aria-labelledby="sessions-title">
      <thead>
        <tr>
          {(["who", "kind", "role", "started", "expires", "state", "actions"] as const).map((c) => (
            <th key={c} scope="col">
              {t(`keys.sessionColumns.${c}`)}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {sessions.map((s) => {
          const state = sessionState(s, now);
          const who = s.display_name ?? s.subject;
          return (
            <tr key={s.id} data-session={s.id}>
              <td>{who}</td>
              <td>{t(`keys.kinds.${s.kind}`, { prefix: s.key_prefix ?? "" })}</td>
              <td>{t(`keys.roles.${s.role}`, { defaultValue: s.role })}</td>
              <td>{formatTime(s.created_at, lng)}</td>
              <td>{formatTime(s.expires_at, lng)}</td>
              <td>{t(`keys.sessionStates.${state}`, { time: formatTime(s.ended_at, lng) })}</td>
              <td>
                {state === "live" && (
                  <button type="button" aria-label={t("keys.end", { name: who })} onClick={() => onEnd(s)}>
                    {t("keys.endShort")}
                  </button>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function SignInHistory({ entries }: { entries: AuditEntry[] }) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  if (entries.length === 0) return <p>{t("keys.noSignins")}</p>;
  return (
    <table aria-labelledby="signins-title">
      <thead>
        <tr>
          {(["time", "who", "outcome", "reason"] as const).map((c) => (
            <th key={c} scope="col">
              {t(`keys.signinColumns.${c}`)}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {entries.map((e) => (
          <tr key={e.id}>
            <td>{formatTime(e.time, lng)}</td>
            <td>{e.actor.id}</td>
            <td>{t(`keys.outcomes.${e.outcome}`, { defaultValue: e.outcome })}</td>
            <td>{e.reason}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
