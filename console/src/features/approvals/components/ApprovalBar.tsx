// Approve or reject one pending step, with a comment. Only operators and admins see the buttons.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import type { PendingApproval } from "../../../api/client";
import { formatTime } from "../../../components/time";
import { useDecide } from "../api/queries";

export function ApprovalBar({ item, canDecide }: { item: PendingApproval; canDecide: boolean }) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const [text, setText] = useState("");
  const decide = useDecide();
  const id = `comment-${item.recovery_id}-${item.step}`;
  const target = item.action.target;
  const send = (approve: boolean) =>
    decide.mutate({ recoveryId: item.recovery_id, step: item.step, approve, text: text.trim() });
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
          <button type="button" onClick={() => send(true)} disabled={decide.isPending}>
            {t("approvals.approve")}
          </button>
          <button type="button" onClick={() => send(false)} disabled={decide.isPending || !text.trim()}>
            {t("approvals.reject")}
          </button>
        </div>
      )}
      {decide.data && <p role="status">{t("approvals.done", { status: decide.data.status })}</p>}
      {decide.error && <p role="alert">{decide.error.message}</p>}
    </li>
  );
}
