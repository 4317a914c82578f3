// Event explorer: a subject pattern (kept in the URL), its live tail with pause and resume, newest first.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { useSearchParams } from "react-router";
import { useSession } from "../../../session/SessionProvider";
import { useTail } from "../api/tail";
import { EventCard } from "../components/EventCard";

export function EventsPage() {
  const [params, setParams] = useSearchParams();
  const pattern = params.get("pattern");
  return <Explorer key={pattern ?? ""} pattern={pattern} onPattern={(p) => setParams({ pattern: p })} />;
}

function Explorer({ pattern, onPattern }: { pattern: string | null; onPattern: (pattern: string) => void }) {
  const { t } = useTranslation();
  const { session } = useSession();
  const [draft, setDraft] = useState(pattern ?? "alert.>");
  const tail = useTail(pattern);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (draft.trim()) onPattern(draft.trim());
  };
  const status =
    tail.state === "error"
      ? t("events.states.error", { reason: tail.error })
      : t(`events.states.${tail.state}`, { pattern: pattern ?? "" });
  return (
    <section aria-labelledby="events-title">
      <h1 id="events-title">{t("events.title")}</h1>
      <form className="filters" aria-label={t("events.form")} onSubmit={submit}>
        <label>
          {t("events.pattern")}
          <input
            name="pattern"
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            aria-describedby="events-pattern-help"
            required
            minLength={3}
            maxLength={300}
          />
        </label>
        <button type="submit">{t("events.follow")}</button>
        {tail.state === "paused" ? (
          <button type="button" onClick={tail.resume}>
            {t("events.resume")}
          </button>
        ) : (
          <button type="button" onClick={tail.pause} disabled={!pattern}>
            {t("events.pause")}
          </button>
        )}
        <button type="button" onClick={tail.clear}>
          {t("events.clear")}
        </button>
      </form>
      <p id="events-pattern-help">{t("events.patternHelp")}</p>
      <p role="status" data-testid="tail-state" data-state={tail.state}>
        {status}
      </p>
      <p>{tail.items.length === 0 ? t("events.none") : t("events.shown", { count: tail.items.length })}</p>
      <ul className="approvals" aria-label={t("events.title")}>
        {tail.items.map((item) => (
          <EventCard key={item.sequence} item={item} jaegerUrl={session?.jaeger_url ?? null} />
        ))}
      </ul>
    </section>
  );
}
