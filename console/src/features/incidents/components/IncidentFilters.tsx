// Filters kept in the URL (bookmarkable, shareable): ?status=firing&severity=critical&namespace=payments
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { IncidentFilters as Filters } from "../api/queries";

export function IncidentFilters({ value, onChange }: { value: Filters; onChange: (next: Filters) => void }) {
  const { t } = useTranslation();
  const [draft, setDraft] = useState<Filters>(value);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onChange(draft);
  };
  const set = (field: keyof Filters, v: string) => setDraft({ ...draft, [field]: v || undefined });
  return (
    <form className="filters" aria-label={t("incidents.filters")} onSubmit={submit}>
      <label>
        {t("incidents.status")}
        <select value={draft.status ?? ""} onChange={(e) => set("status", e.target.value)}>
          <option value="">{t("common.any")}</option>
          <option value="firing">{t("status.firing")}</option>
          <option value="resolved">{t("status.resolved")}</option>
        </select>
      </label>
      <label>
        {t("incidents.severity")}
        <select value={draft.severity ?? ""} onChange={(e) => set("severity", e.target.value)}>
          <option value="">{t("common.any")}</option>
          <option value="critical">{t("severity.critical")}</option>
          <option value="warning">{t("severity.warning")}</option>
          <option value="info">{t("severity.info")}</option>
        </select>
      </label>
      <label>
        {t("incidents.namespace")}
        <input value={draft.namespace ?? ""} onChange={(e) => set("namespace", e.target.value)} />
      </label>
      <label>
        {t("incidents.alertname")}
        <input value={draft.alertname ?? ""} onChange={(e) => set("alertname", e.target.value)} />
      </label>
      <button type="submit">{t("incidents.apply")}</button>
    </form>
  );
}
