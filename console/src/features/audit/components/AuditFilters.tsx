// The search form; the filters live in the URL (?actor=...&outcome=denied), so a search can be bookmarked and shared.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { OUTCOMES, type AuditFilters as Filters } from "../api/queries";

const TEXT = ["actor", "action", "target", "namespace"] as const;

export function AuditFilters({ value, onChange }: { value: Filters; onChange: (next: Filters) => void }) {
  const { t } = useTranslation();
  const [draft, setDraft] = useState<Filters>(value);
  const set = (field: keyof Filters, v: string) => setDraft({ ...draft, [field]: v || undefined });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onChange(draft);
  };
  return (
    <form className="filters" aria-label={t("audit.filters")} onSubmit={submit}>
      {TEXT.map((field) => (
        <label key={field}>
          {t(`audit.${field}`)}
          <input name={field} value={draft[field] ?? ""} onChange={(e) => set(field, e.target.value)} />
        </label>
      ))}
      <label>
        {t("audit.outcome")}
        <select name="outcome" value={draft.outcome ?? ""} onChange={(e) => set("outcome", e.target.value)}>
          <option value="">{t("common.any")}</option>
          {OUTCOMES.map((o) => (
            <option key={o} value={o}>
              {t(`audit.outcomes.${o}`)}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t("audit.since")}
        <input type="datetime-local" name="since" value={draft.since ?? ""} onChange={(e) => set("since", e.target.value)} />
      </label>
      <label>
        {t("audit.until")}
        <input type="datetime-local" name="until" value={draft.until ?? ""} onChange={(e) => set("until", e.target.value)} />
      </label>
      <button type="submit">{t("audit.search")}</button>
      <button
        type="button"
        onClick={() => {
          setDraft({});
          onChange({});
        }}
      >
        {t("audit.clear")}
      </button>
    </form>
  );
}
