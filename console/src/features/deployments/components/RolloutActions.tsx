// Promote, abort (running rollouts) and retry (finished ones), with a reason for the audit trail. Operators only.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";
import { isActive, type CommandKind, type Rollout } from "../api/queries";

interface Props {
  rollout: Rollout;
  canAct: boolean;
  busy: boolean;
  onCommand: (kind: CommandKind, reason: string) => void;
  onRetry: () => void;
  retriedId?: string;
}

export function RolloutActions({ rollout, canAct, busy, onCommand, onRetry, retriedId }: Props) {
  const { t } = useTranslation();
  const [reason, setReason] = useState("");
  if (!canAct) return <p>{t("deployments.actions.viewer")}</p>;
  const running = isActive(rollout.state);
  return (
    <section aria-labelledby="actions-title" className="panel actions">
      <h2 id="actions-title">{t("deployments.actions.title")}</h2>
      <label htmlFor="command-reason">{t("deployments.actions.reason")}</label>
      <input id="command-reason" value={reason} onChange={(e) => setReason(e.target.value)} maxLength={1024} />
      {running && (
        <>
          <button
            type="button"
            disabled={busy || rollout.phase !== "paused"}
            onClick={() => onCommand("promote", reason.trim())}
          >
            {t("deployments.actions.promote")}
          </button>
          <button type="button" className="danger" disabled={busy} onClick={() => onCommand("abort", reason.trim())}>
            {t("deployments.actions.abort")}
          </button>
        </>
      )}
      {!running && (
        <button type="button" disabled={busy} onClick={onRetry}>
          {t("deployments.actions.retry")}
        </button>
      )}
      {retriedId && (
        <p role="status">
          {t("deployments.actions.retried")}
          <Link to={`/deployments/${retriedId}`}>{retriedId}</Link>
        </p>
      )}
    </section>
  );
}
