// The analyzer's answer to "why" (diagnosis.made / the latest diagnosis.revised): the top cause with its
// confidence, the healer action that addresses it and the evidence it rests on; or "unknown" with what was checked.
import { useTranslation } from "react-i18next";
import type { ChainEvent } from "../../../api/client";

interface DiagnosisEvidence {
  kind: string;
  ref: string;
  detail?: string | null;
}

interface Cause {
  kind: string;
  summary: string;
  confidence: number;
  suggested_action: string;
  evidence: DiagnosisEvidence[];
}

interface Checked {
  source: string;
  count: number;
  detail?: string | null;
}

interface DiagnosisData {
  outcome?: string;
  revision?: number;
  causes?: Cause[];
  checked?: Checked[];
}

/** The cause the analyzer is surest of (causes arrive ranked; the maximum guards against any other order). */
export function topCause(causes: Cause[]): Cause | undefined {
  return causes.reduce<Cause | undefined>((best, c) => (!best || c.confidence > best.confidence ? c : best), undefined);
}

export function Diagnosis({ event }: { event: ChainEvent }) {
  const { t, i18n } = useTranslation();
  const data = event.data as DiagnosisData;
  const cause = data.outcome === "unknown" ? undefined : topCause(data.causes ?? []);
  const percent = new Intl.NumberFormat(i18n.resolvedLanguage ?? "en", { style: "percent" });
  if (!cause) {
    return (
      <div className="diagnosis" data-outcome="unknown">
        <p>{t("diagnosis.unknown")}</p>
        <h4>{t("diagnosis.checked")}</h4>
        <ul>
          {(data.checked ?? []).map((c) => (
            <li key={c.source}>
              {t("diagnosis.checkedItem", { source: c.source, count: c.count })}
              {c.detail ? ` (${c.detail})` : ""}
            </li>
          ))}
        </ul>
      </div>
    );
  }
  return (
    <div className="diagnosis" data-outcome="explained">
      <p className="cause">
        <strong>{t("diagnosis.cause")}:</strong> {cause.summary}
      </p>
      <p>
        {t("diagnosis.confidence")}: <data value={cause.confidence}>{percent.format(cause.confidence)}</data>
      </p>
      <p>
        {t("diagnosis.suggested")}: <code>{cause.suggested_action}</code>
      </p>
      <h4>{t("diagnosis.evidence")}</h4>
      <ul>
        {cause.evidence.map((e) => (
          <li key={`${e.kind}:${e.ref}`}>
            {t(`diagnosis.kinds.${e.kind}`, e.kind)}: <code>{e.ref}</code>
            {e.detail ? ` — ${e.detail}` : ""}
          </li>
        ))}
      </ul>
    </div>
  );
}
