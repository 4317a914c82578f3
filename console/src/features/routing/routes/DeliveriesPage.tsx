// The delivery log: every attempt, newest first, filterable by outcome (the filter lives in the URL).
import { useTranslation } from "react-i18next";
import { useSearchParams } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { useDeliveries } from "../api/queries";
import { DeliveryTable } from "../components/DeliveryTable";

const OUTCOMES = ["delivered", "retry", "dead"] as const;
type Outcome = (typeof OUTCOMES)[number];

export function DeliveriesPage() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const raw = params.get("outcome");
  const outcome = OUTCOMES.includes(raw as Outcome) ? (raw as Outcome) : null;
  const log = useDeliveries(outcome);
  const items = log.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section aria-labelledby="deliveries-title">
      <h1 id="deliveries-title">{t("deliveries.title")}</h1>
      <p>{t("deliveries.help")}</p>
      <p>
        <small>{t("deliveries.scopeNote")}</small>
      </p>
      <label>
        {t("deliveries.filter")}{" "}
        <select
          value={outcome ?? ""}
          onChange={(e) => setParams(e.target.value ? { outcome: e.target.value } : {})}
        >
          <option value="">{t("deliveries.all")}</option>
          {OUTCOMES.map((o) => (
            <option key={o} value={o}>
              {t(`deliveries.outcome.${o}`)}
            </option>
          ))}
        </select>
      </label>
      {log.isPending && <Loading />}
      {log.error && <LoadError error={log.error} />}
      {log.data && <DeliveryTable items={items} />}
      {log.hasNextPage && (
        <button type="button" onClick={() => void log.fetchNextPage()} disabled={log.isFetchingNextPage}>
          {t("deliveries.more")}
        </button>
      )}
    </section>
  );
}
