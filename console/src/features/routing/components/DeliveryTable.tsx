// The delivery log: one row per attempt, failures and retries with their status and error.
import { useTranslation } from "react-i18next";
import { formatTime } from "../../../components/time";
import type { Delivery } from "../api/queries";

export function DeliveryTable({ items }: { items: Delivery[] }) {
  const { t, i18n } = useTranslation();
  if (items.length === 0) return <p>{t("deliveries.none")}</p>;
  return (
    <table className="deliveries">
      <caption>{t("deliveries.caption")}</caption>
      <thead>
        <tr>
          <th scope="col">{t("deliveries.columns.at")}</th>
          <th scope="col">{t("deliveries.columns.receiver")}</th>
          <th scope="col">{t("deliveries.columns.channel")}</th>
          <th scope="col">{t("deliveries.columns.attempt")}</th>
          <th scope="col">{t("deliveries.columns.outcome")}</th>
          <th scope="col">{t("deliveries.columns.status")}</th>
          <th scope="col">{t("deliveries.columns.error")}</th>
          <th scope="col">{t("deliveries.columns.latency")}</th>
        </tr>
      </thead>
      <tbody>
        {items.map((d) => (
          <tr key={d.id} className={`outcome-${d.outcome}`}>
            <td>{formatTime(d.at, i18n.language)}</td>
            <td>
              {d.receiver} <small>{d.integration}</small>
            </td>
            <td>{d.channel}</td>
            <td>{d.attempt}</td>
            <td>{t(`deliveries.outcome.${d.outcome}`, d.outcome)}</td>
            <td>{d.status_code ?? "-"}</td>
            <td>{d.error ?? ""}</td>
            <td>{t("deliveries.latency", { ms: Math.round(d.latency_ms) })}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
