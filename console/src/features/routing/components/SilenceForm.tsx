// Create a silence: matchers (one per line, prefilled from an incident), a duration and a reason, with a preview
// of the firing alerts it would mute before it is created.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import type { NewSilence, SilencePreview } from "../api/queries";

export function parseMatchers(text: string): string[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

export function SilenceForm({
  initialMatchers,
  busy,
  preview,
  onPreview,
  onCreate,
}: {
  initialMatchers: string[];
  busy?: boolean;
  preview?: SilencePreview | null;
  onPreview: (matchers: string[]) => void;
  onCreate: (silence: NewSilence) => void;
}) {
  const { t } = useTranslation();
  const [matchers, setMatchers] = useState(initialMatchers.join("\n"));
  const [hours, setHours] = useState(2);
  const [comment, setComment] = useState("");
  const list = parseMatchers(matchers);
  return (
    <form
      className="silence-form"
      onSubmit={(e) => {
        e.preventDefault();
        onCreate({ matchers: list, durationSeconds: Math.round(hours * 3600), comment: comment.trim() });
      }}
    >
      <label>
        {t("silences.matchers")}
        <textarea
          value={matchers}
          rows={Math.max(3, list.length + 1)}
          spellCheck={false}
          aria-describedby="silence-matchers-help"
          onChange={(e) => setMatchers(e.target.value)}
        />
      </label>
      <small id="silence-matchers-help">{t("silences.matchersHelp")}</small>
      <label>
        {t("silences.duration")}
        <input
          type="number"
          min={0.5}
          max={2160}
          step={0.5}
          value={hours}
          onChange={(e) => setHours(Number(e.target.value) || 1)}
        />
      </label>
      <label>
        {t("silences.comment")}
        <input
          value={comment}
          required
          maxLength={2000}
          aria-describedby="silence-comment-help"
          onChange={(e) => setComment(e.target.value)}
        />
      </label>
      <small id="silence-comment-help">{t("silences.commentHelp")}</small>
      <div className="toolbar">
        <button type="button" disabled={busy || list.length === 0} onClick={() => onPreview(list)}>
          {t("silences.preview")}
        </button>
        <button type="submit" disabled={busy || list.length === 0 || comment.trim() === ""}>
          {t("silences.submit")}
        </button>
      </div>
      {preview && (
        <section aria-label={t("silences.previewTitle")}>
          <p role="status">
            {preview.alerts.length === 0
              ? t("silences.previewNone")
              : t("silences.previewCount", { count: preview.alerts.length, firing: preview.firing })}
          </p>
          {preview.alerts.length > 0 && (
            <ul className="muted-alerts">
              {preview.alerts.map((a) => (
                <li key={a.fingerprint}>
                  {Object.entries(a.labels)
                    .map(([k, v]) => `${k}="${v}"`)
                    .join(", ")}
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
    </form>
  );
}
