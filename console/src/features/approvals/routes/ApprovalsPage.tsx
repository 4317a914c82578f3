import { useTranslation } from "react-i18next";
import { LoadError, Loading } from "../../../components/QueryState";
import { useSession } from "../../../session/SessionProvider";
import { useDecide, usePending } from "../api/queries";
import { ApprovalBar } from "../components/ApprovalBar";

export function ApprovalsPage() {
  const { t } = useTranslation();
  const { can } = useSession();
  const query = usePending();
  const canDecide = can("operator");
  const decide = useDecide();
  return (
    <section aria-labelledby="approvals-title">
      <h1 id="approvals-title">{t("approvals.title")}</h1>
      {!canDecide && <p>{t("approvals.viewerNote")}</p>}
      <div aria-live="polite">
        {decide.data && (
          <p role="status">
            {decide.data.recovery_id}: {t("approvals.done", { status: decide.data.status })}
          </p>
        )}
        {decide.error && <p role="alert">{decide.error.message}</p>}
      </div>
      {query.isPending && <Loading />}
      {query.error && <LoadError error={query.error} />}
      {query.data && query.data.length === 0 && <p>{t("approvals.none")}</p>}
      {query.data && query.data.length > 0 && (
        <ul className="approvals">
          {query.data.map((item) => (
            <ApprovalBar
              key={`${item.recovery_id}:${item.step}`}
              item={item}
              canDecide={canDecide}
              busy={decide.isPending}
              onDecide={decide.mutate}
            />
          ))}
        </ul>
      )}
    </section>
  );
}
