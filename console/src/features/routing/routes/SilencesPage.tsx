// Silences: the list with expiry, and the form to create one - from an incident (`?incident=<id>&matcher=...`,
// linked from the incident page) with its labels prefilled, a preview of what it would mute, and then the
// incident's notifications, polled, to see them muted.
import { useTranslation } from "react-i18next";
import { useSearchParams } from "react-router";
import { LoadError, Loading } from "../../../components/QueryState";
import { formatTime } from "../../../components/time";
import { useSession } from "../../../session/SessionProvider";
import {
  useCreateSilence,
  useExpireSilence,
  useIncidentOutcomes,
  usePreviewSilence,
  useSilences,
} from "../api/queries";
import { SilenceForm } from "../components/SilenceForm";
import { SilenceList } from "../components/SilenceList";

function IncidentOutcomes({ incident }: { incident: string }) {
  const { t } = useTranslation();
  const outcomes = useIncidentOutcomes(incident);
  return (
    <section aria-labelledby="outcomes-title">
      <h2 id="outcomes-title">{t("silences.outcomes")}</h2>
      {outcomes.error && <LoadError error={outcomes.error} />}
      {outcomes.data && outcomes.data.length === 0 && <p>{t("silences.outcomesNone")}</p>}
      {outcomes.data && outcomes.data.length > 0 && (
        <ul aria-live="polite" data-testid="incident-outcomes">
          {outcomes.data.map((o) => (
            <li key={`${o.event_id}:${o.receiver}:${o.integration}`} data-state={o.state}>
              {t("silences.outcome", {
                receiver: o.receiver,
                integration: o.integration,
                state: t(`silences.outcomeState.${o.state}`, o.state),
              })}
              {o.reason ? ` (${o.reason})` : ""}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function SilencesPage() {
  const { t, i18n } = useTranslation();
  const { can } = useSession();
  const [params] = useSearchParams();
  const incident = params.get("incident");
  const prefilled = params.getAll("matcher");
  const silences = useSilences();
  const preview = usePreviewSilence();
  const create = useCreateSilence();
  const expire = useExpireSilence();
  const canEdit = can("operator");
  const failure = create.error ?? expire.error ?? preview.error;
  return (
    <section aria-labelledby="silences-title">
      <h1 id="silences-title">{t("silences.title")}</h1>
      {canEdit ? (
        <section aria-labelledby="create-title">
          <h2 id="create-title">{t("silences.create")}</h2>
          {incident && <p>{t("silences.fromIncident", { incident })}</p>}
          <SilenceForm
            key={prefilled.join("\n")}
            initialMatchers={prefilled}
            busy={create.isPending}
            preview={preview.data ?? null}
            onPreview={(m) => preview.mutate(m)}
            onCreate={(s) => create.mutate(s)}
          />
        </section>
      ) : (
        <p>{t("silences.viewerNote")}</p>
      )}
      <div aria-live="polite">
        {create.data && (
          <p role="status">
            {t("silences.created", { id: create.data.id, until: formatTime(create.data.ends_at, i18n.language) })}
          </p>
        )}
        {failure && <p role="alert">{t("silences.failed", { reason: failure.message })}</p>}
      </div>
      {incident && <IncidentOutcomes incident={incident} />}
      <h2>{t("silences.list")}</h2>
      {silences.isPending && <Loading />}
      {silences.error && <LoadError error={silences.error} />}
      {silences.data && (
        <SilenceList
          silences={silences.data}
          canExpire={canEdit}
          busy={expire.isPending}
          onExpire={(id) => expire.mutate(id)}
        />
      )}
    </section>
  );
}
