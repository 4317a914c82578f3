// The request form: workload, image, strategy, canary steps and an optional Prometheus analysis gate.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { DeploymentRequest } from "../api/queries";
import { emptyDraft, requestOf, type FormDraft, type StrategyName } from "../api/requests";

const STRATEGIES: StrategyName[] = ["rolling", "recreate", "canary", "blue-green"];
const OPERATORS = [">=", ">", "<=", "<"] as const;

export function DeployForm({ busy, onSubmit }: { busy: boolean; onSubmit: (body: DeploymentRequest) => void }) {
  const { t } = useTranslation();
  const [draft, setDraft] = useState<FormDraft>(emptyDraft);
  const set = (over: Partial<FormDraft>) => setDraft((d) => ({ ...d, ...over }));
  const setAnalysis = (over: Partial<FormDraft["analysis"]>) =>
    setDraft((d) => ({ ...d, analysis: { ...d.analysis, ...over } }));
  const setStep = (i: number, over: Partial<FormDraft["steps"][number]>) =>
    setDraft((d) => ({ ...d, steps: d.steps.map((s, j) => (i === j ? { ...s, ...over } : s)) }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onSubmit(requestOf(draft));
  };
  const f = (key: string, opts?: Record<string, unknown>) => t(`deployments.form.${key}`, opts ?? {});
  const a = draft.analysis;
  return (
    <form className="deploy-form" onSubmit={submit} aria-labelledby="form-title">
      <h2 id="form-title">{f("title")}</h2>
      <p className="help">{f("help")}</p>
      <div className="row">
        <label>
          {f("namespace")}
          <input required value={draft.namespace} onChange={(e) => set({ namespace: e.target.value })} />
        </label>
        <label>
          {f("name")}
          <input required value={draft.name} onChange={(e) => set({ name: e.target.value })} />
        </label>
        <label>
          {f("container")}
          <input required value={draft.container} onChange={(e) => set({ container: e.target.value })} />
        </label>
        <label className="wide">
          {f("image")}
          <input required value={draft.image} onChange={(e) => set({ image: e.target.value })} />
        </label>
      </div>
      <label>
        {f("strategy")}
        <select value={draft.strategy} onChange={(e) => set({ strategy: e.target.value as StrategyName })}>
          {STRATEGIES.map((s) => (
            <option key={s} value={s}>
              {f(`strategies.${s}`)}
            </option>
          ))}
        </select>
      </label>
      {draft.strategy === "canary" && (
        <fieldset>
          <legend>{f("steps")}</legend>
          {draft.steps.map((s, i) => (
            <div className="row" key={i}>
              <label>
                {f("weight", { n: i + 1 })}
                <input
                  type="number"
                  min={1}
                  max={100}
                  required
                  value={s.weight}
                  onChange={(e) => setStep(i, { weight: Number(e.target.value) })}
                />
              </label>
              <label>
                {f("pause", { n: i + 1 })}
                <input
                  type="number"
                  min={0}
                  value={s.pauseSeconds ?? ""}
                  onChange={(e) => setStep(i, { pauseSeconds: e.target.value === "" ? null : Number(e.target.value) })}
                />
              </label>
              <label className="check">
                <input type="checkbox" checked={s.manual} onChange={(e) => setStep(i, { manual: e.target.checked })} />
                {f("manual", { n: i + 1 })}
              </label>
              <button
                type="button"
                disabled={draft.steps.length === 1}
                onClick={() => set({ steps: draft.steps.filter((_, j) => j !== i) })}
              >
                {f("removeStep", { n: i + 1 })}
              </button>
            </div>
          ))}
          <button
            type="button"
            onClick={() =>
              set({ steps: [...draft.steps, { weight: Math.min(100, (draft.steps.at(-1)?.weight ?? 0) + 25), pauseSeconds: null, manual: false }] })
            }
          >
            {f("addStep")}
          </button>
        </fieldset>
      )}
      {draft.strategy === "blue-green" && (
        <label>
          {f("activeService")}
          <input required value={draft.activeService} onChange={(e) => set({ activeService: e.target.value })} />
        </label>
      )}
      {draft.strategy !== "recreate" && (
        <fieldset>
          <legend>{f("analysis")}</legend>
          <label className="check">
            <input type="checkbox" checked={a.enabled} onChange={(e) => setAnalysis({ enabled: e.target.checked })} />
            {f("analysisOn")}
          </label>
          {a.enabled && (
            <div className="row">
              <label>
                {f("metric")}
                <input required value={a.name} onChange={(e) => setAnalysis({ name: e.target.value })} />
              </label>
              <label className="wide">
                {f("query")}
                <input required value={a.query} onChange={(e) => setAnalysis({ query: e.target.value })} />
              </label>
              <label>
                {f("operator")}
                <select
                  value={a.operator}
                  onChange={(e) => setAnalysis({ operator: e.target.value as FormDraft["analysis"]["operator"] })}
                >
                  {OPERATORS.map((o) => (
                    <option key={o}>{o}</option>
                  ))}
                </select>
              </label>
              <label>
                {f("threshold")}
                <input
                  type="number"
                  step="any"
                  value={a.threshold}
                  onChange={(e) => setAnalysis({ threshold: Number(e.target.value) })}
                />
              </label>
              <label>
                {f("interval")}
                <input
                  type="number"
                  min={1}
                  value={a.intervalSeconds}
                  onChange={(e) => setAnalysis({ intervalSeconds: Number(e.target.value) })}
                />
              </label>
              <label>
                {f("count")}
                <input type="number" min={1} value={a.count} onChange={(e) => setAnalysis({ count: Number(e.target.value) })} />
              </label>
              <label>
                {f("failureLimit")}
                <input
                  type="number"
                  min={0}
                  value={a.failureLimit}
                  onChange={(e) => setAnalysis({ failureLimit: Number(e.target.value) })}
                />
              </label>
            </div>
          )}
        </fieldset>
      )}
      <label className="wide">
        {f("reason")}
        <input value={draft.reason} maxLength={1024} onChange={(e) => set({ reason: e.target.value })} />
      </label>
      <button type="submit" disabled={busy}>
        {f("submit")}
      </button>
    </form>
  );
}
