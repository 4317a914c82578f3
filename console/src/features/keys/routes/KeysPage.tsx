// Keys and users (admins): create a key (its token shown once), revoke one, see and end console sessions, and
// the sign-in history. Everyone else is told the page is for admins; the gateway refuses them anyway.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { LoadError, Loading } from "../../../components/QueryState";
import { useSession } from "../../../session/SessionProvider";
import {
  useCreateKey,
  useEndSession,
  useKeys,
  useRevokeKey,
  useSessions,
  useSignins,
  type KeyCreated,
} from "../api/queries";
import { KeyForm } from "../components/KeyForm";
import { KeyTable } from "../components/KeyTable";
import { SecretOnce } from "../components/SecretOnce";
import { SessionTable, SignInHistory } from "../components/SessionTable";

function AdminKeys() {
  const { t } = useTranslation();
  const keys = useKeys();
  const sessions = useSessions();
  const signins = useSignins();
  const create = useCreateKey();
  const revoke = useRevokeKey();
  const end = useEndSession();
  const [created, setCreated] = useState<KeyCreated | null>(null);
  const failure = create.error ?? revoke.error ?? end.error;
  return (
    <>
      {created ? (
        <SecretOnce created={created} onDismiss={() => setCreated(null)} />
      ) : (
        <KeyForm busy={create.isPending} onCreate={(body) => create.mutate(body, { onSuccess: setCreated })} />
      )}
      {failure && <p role="alert">{t("keys.failed", { reason: failure.message })}</p>}
      <h2 id="keys-list-title">{t("keys.list")}</h2>
      {keys.isPending && <Loading />}
      {keys.error && <LoadError error={keys.error} />}
      {keys.data && (
        <KeyTable
          keys={keys.data}
          onRevoke={(key) => {
            if (window.confirm(t("keys.confirmRevoke", { name: key.name }))) revoke.mutate(key.id);
          }}
        />
      )}
      <h2 id="sessions-title">{t("keys.sessions")}</h2>
      {sessions.isPending && <Loading />}
      {sessions.error && <LoadError error={sessions.error} />}
      {sessions.data && <SessionTable sessions={sessions.data} onEnd={(s) => end.mutate(s.id)} />}
      <h2 id="signins-title">{t("keys.signins")}</h2>
      {signins.isPending && <Loading />}
      {signins.error && <LoadError error={signins.error} />}
      {signins.data && <SignInHistory entries={signins.data} />}
    </>
  );
}

export function KeysPage() {
  const { t } = useTranslation();
  const { session } = useSession();
  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">{t("keys.title")}</h1>
      {session?.identity.role === "admin" ? <AdminKeys /> : <p>{t("keys.adminsOnly")}</p>}
    </section>
  );
}
