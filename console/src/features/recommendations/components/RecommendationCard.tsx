// One recommendation: what changes per container, money saved or risked per month, the guardrail holding it,
// and (operators) apply, first as a dry run; a refusal shows the guardrail's reason.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { LoadError, Loading } from "../../../components/QueryState";
import { cpu, memory, money } from "../api/money";
import { useApply, useUsage, type Recommendation } from "../api/queries";
import { UsageCharts } from "./UsageCharts";

export function RecommendationCard({ item, canApply }: { item: Recommendation; canApply: boolean }) {
  const { t, i18n } = useTranslation();
  const lng = i18n.resolvedLanguage ?? "en";
  const rec = item.recommendation;
  const cost = rec.cost;
  const saves = cost.monthly_delta < 0;
  const [comment, setComment] = useState("");
  const [open, setOpen] = useState(false);
  const usage = useUsage(item.namespace, item.workload, open);
  const apply = useApply();
  const id = `comment-${item.id}`;
  const containers = rec.containers ?? [];
  return (
    <li className="recommendation" data-recommendation={item.id} data-status={item.status}>
      <h3>
        {item.namespace}/{item.workload} <span className={`badge rstatus-${item.status}`}>{t(`recommendations.status.${item.status}`, item.status)}</span>
      </h3>
      <p className={saves ? "saves" : "risks"}>
        {saves
          ? t("recommendations.saves", { amount: money(-cost.monthly_delta, cost.currency ?? "USD", lng) })
          : t("recommendations.risks", { amount: money(cost.monthly_delta, cost.currency ?? "USD", lng) })}{" "}
        ({t("recommendations.monthly", {
          now: money(cost.monthly_now, cost.currency ?? "USD", lng),
          after: money(cost.monthly_after, cost.currency ?? "USD", lng),
        })})
      </p>
      <p>
        {item.reason} · {t("recommendations.confidence", { value: Math.round(rec.confidence * 100) })} ·{" "}
        {t("recommendations.risk", { risk: t(`recommendations.riskLevels.${rec.risk}`, rec.risk) })}
      </p>
      {item.guard && <p className="guard">{t("recommendations.guard", { guard: item.guard })}</p>}
      <table className="changes-table">
        <caption>{t("recommendations.table.caption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("recommendations.table.container")}</th>
            <th scope="col">{t("recommendations.table.cpu")}</th>
            <th scope="col">{t("recommendations.table.memory")}</th>
          </tr>
        </thead>
        <tbody>
          {containers.map((c) => (
            <tr key={c.container}>
              <th scope="row">{c.container}</th>
              <td>
                {cpu(c.current.requests?.cpu_millicores)} → <strong>{cpu(c.recommended.requests?.cpu_millicores)}</strong>
              </td>
              <td>
                {memory(c.current.requests?.memory_bytes)} → <strong>{memory(c.recommended.requests?.memory_bytes)}</strong>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rec.replicas && (
        <p>{t("recommendations.replicas", { current: rec.replicas.current, recommended: rec.replicas.recommended })}</p>
      )}
      <button
        type="button"
        className="link"
        aria-expanded={open}
        aria-controls={`usage-${item.id}`}
        onClick={() => setOpen(!open)}
      >
        {t("recommendations.usage.show")}
      </button>
      <div id={`usage-${item.id}`} hidden={!open}>
        {open && usage.isPending && <Loading />}
        {open && usage.error && <LoadError error={usage.error} />}
        {open && usage.data && <UsageCharts usage={usage.data} containers={containers} />}
      </div>
      {canApply && item.status === "open" && (
        <div className="decide">
          <label htmlFor={id}>{t("recommendations.comment")}</label>
          <input id={id} value={comment} maxLength={1024} onChange={(e) => setComment(e.target.value)} />
          <button type="button" disabled={apply.isPending} onClick={() => apply.mutate({ id: item.id, dryRun: true, comment })}>
            {t("recommendations.dryRun")}
          </button>
          <button type="button" disabled={apply.isPending} onClick={() => apply.mutate({ id: item.id, dryRun: false, comment })}>
            {t("recommendations.apply")}
          </button>
        </div>
      )}
      <div aria-live="polite">
        {apply.data && (
          <p role="status" data-testid="apply-result">
            {apply.data.dry_run
              ? t("recommendations.checked", { reason: apply.data.reason })
              : t("recommendations.applied", { reason: apply.data.reason })}
          </p>
        )}
        {apply.error && (
          <p role="alert" className="refused" data-testid="apply-refused">
            {t("recommendations.refused", { reason: apply.error.message })}
          </p>
        )}
      </div>
    </li>
  );
}
