// The API keys (never their secrets): role, scope, expiry and state; revoking asks first.
import { useTranslation } from "react-i18next";
import { formatTime } from "../../../components/time";
import type { KeyView } from "../api/queries";

export function keyState(key: KeyView, now: Date): "active" | "revoked" | "expired" {
  if (key.revoked_at) return "revoked";
  if (key.expires_at && new Date(key.expires_at) <= now) return "expired";
  return "active";
}

export function KeyTable({ keys, onRevoke, now = new Date() }: { keys: KeyView[]; onRevoke: (key: KeyView) => void; now?: Date }) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  if (keys.length === 0) return <p>{t("keys.none")}</p>;
  return (
    <table aria-labelledby="keys-list-title">
      <thead>
        <tr>
          {(["name", "prefix", "role", "scope", "created", "expires", "state", "actions"] as const).map((c) => (
            <th key={c} scope="col">
              {t(`keys.columns.${c}`)}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {keys.map((key) => {
          const state = keyState(key, now);
          return (
            <tr key={key.id} data-key={key.id}>
              <td>{key.name}</td>
              <td>
                <code>{key.prefix}</code>
              </td>
              <td>{t(`keys.roles.${key.role}`, { defaultValue: key.role })}</td>
              <td>
                {key.namespaces.join(", ")} @ {key.clusters.join(", ")}
              </td>
              <td>{formatTime(key.created_at, lng)}</td>
              <td>{key.expires_at ? formatTime(key.expires_at, lng) : t("keys.never")}</td>
              <td>{t(`keys.states.${state}`, { time: formatTime(key.revoked_at, lng) })}</td>
              <td>
                {state === "active" && (
                  <button type="button" aria-label={t("keys.revoke", { name: key.name })} onClick={() => onRevoke(key)}>
                    {t("keys.revokeShort")}
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
