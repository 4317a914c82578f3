// Approve or reject one pending step, with a comment. Only operators and admins see the buttons.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import type { PendingApproval } from "../../../api/client";
import { formatTime } from "../../../components/time";
import type { Decision } from "../api/queries";

interface Props {
  item: PendingApproval;
  canDecide: boolean;
  busy?: boolean;
  onDecide?: (decision: Decision) => void;
}

export function ApprovalBar({ item, canDecide, busy = false, onDecide = () => {} }: Props) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const [text, setText] = useState("");
  const id = `comment-${item.recovery_id}-${item.step}`;
  const target = item.action.target;
  const send = (approve: boolean) =>
    onDecide({ recoveryId: item.recovery_id, step: item.step, approve, text: text.trim() });
  return (
    <li className="approval" data-recovery={item.recovery_id}>
      <h2>
        {item.action.kind} {target.kind}/{target.namespace ?? "_"}/{target.name}
      </h2>
      <p>{item.reason}</p>
      <p>
        <time dateTime={item.expires_at} className="expires">
          {t("approvals.expires", { when: formatTime(item.expires_at, lng) })}
        </time>{" "}
        · {t("approvals.requested", { when: formatTime(item.requested_at, lng) })}
      </p>
      {canDecide && (
        <div className="decide">
          <label htmlFor={id}>{t("approvals.comment")}</label>
          <input id={id} value={text} onChange={(e) => setText(e.target.value)} maxLength={1024} />
          <button type="button" onClick={() => send(true)} disabled={busy}>
            {t("approvals.approve")}
          </button>
          <button type="button" onClick={() => send(false)} disabled={busy || !text.trim()}>
            {t("approvals.reject")}
          </button>
        </div>
      )}
    </li>
  );
}
