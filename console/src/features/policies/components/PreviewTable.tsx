// The preview: each past incident with what the version in force and the edited document would have done.
import { useTranslation } from "react-i18next";
import { Link } from "react-router";
import { formatTime } from "../../../components/time";
import type { PolicyPreview, PreviewOutcome } from "../api/queries";

export function OutcomeText({ outcome }: { outcome: PreviewOutcome }) {
  const { t } = useTranslation();
  const text = t(`policies.preview.decision.${outcome.decision}`, {
    policy: outcome.policy ?? "",
    step: outcome.step ?? "",
    action: outcome.action ?? "",
    guard: outcome.guard ?? "",
  });
  return (
    <>
      <span className={`decision decision-${outcome.decision}`}>{text}</span>
      <br />
      <small>{outcome.reason}</small>
    </>
  );
}

export function PreviewTable({ preview }: { preview: PolicyPreview }) {
  const { t, i18n } = useTranslation();
  const items = preview.items ?? [];
  if (items.length === 0) return <p>{t("policies.preview.none")}</p>;
  const changed = items.filter((i) => i.changed).length;
  return (
    <>
      <p role="status">{t("policies.preview.summary", { changed, total: items.length })}</p>
      <table className="preview">
        <caption>{t("policies.preview.caption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("policies.preview.incident")}</th>
            <th scope="col">{t("policies.preview.fired")}</th>
            <th scope="col">{t("policies.preview.current")}</th>
            <th scope="col">{t("policies.preview.edited")}</th>
            <th scope="col">{t("policies.preview.changed")}</th>
          </tr>
        </thead>
        <tbody>
          {items.map((item) => (
            <tr key={item.incident_id} className={item.changed ? "changed" : undefined}>
              <th scope="row">
                <Link to={`/incidents/${encodeURIComponent(item.incident_id)}`}>
                  {item.alertname} {item.namespace ?? ""}
                </Link>
              </th>
              <td>{formatTime(item.fired_at, i18n.language)}</td>
              <td>
                <OutcomeText outcome={item.current} />
              </td>
              <td>
                <OutcomeText outcome={item.edited} />
              </td>
              <td>{item.changed ? t("policies.preview.yes") : t("policies.preview.no")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {preview.assumptions && preview.assumptions.length > 0 && (
        <details>
          <summary>{t("policies.preview.assumptions")}</summary>
          <ul>
            {preview.assumptions.map((a) => (
              <li key={a}>{a}</li>
            ))}
          </ul>
        </details>
      )}
    </>
  );
}
