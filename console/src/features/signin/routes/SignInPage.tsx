// Sign-in: SSO through the gateway (when configured) or an API key sent once to POST /v1/session; either way
// the gateway answers with an HttpOnly session cookie.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Navigate, useSearchParams } from "react-router";
import { LanguageSwitch } from "../../../components/LanguageSwitch";
import { useSession } from "../../../session/SessionProvider";
import { ssoLoginUrl, useSignInMethods } from "../api/queries";

function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export function SignInPage() {
  const { t } = useTranslation();
  const { session, signIn } = useSession();
  const [params] = useSearchParams();
  const methods = useSignInMethods();
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (session) return <Navigate to={safeNext(params.get("next"))} replace />;
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(key.trim());
      setKey("");
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin" id="content">
      <h1>{t("session.title")}</h1>
      {methods.data?.oidc && (
        <div className="sso">
          <a className="button" href={ssoLoginUrl(safeNext(params.get("next")))} aria-describedby="sso-help">
            {t("session.sso")}
          </a>
          <p id="sso-help" className="help">
            {t("session.ssoHelp")}
          </p>
          <h2>{t("session.orApiKey")}</h2>
        </div>
      )}
      <form onSubmit={(e) => void submit(e)}>
        <label htmlFor="api-key">{t("session.apiKey")}</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          required
          value={key}
          onChange={(e) => setKey(e.target.value)}
          aria-describedby="api-key-help"
        />
        <p id="api-key-help" className="help">
          {t("session.apiKeyHelp")}
        </p>
        <button type="submit" disabled={busy}>
          {t("session.submit")}
        </button>
        {error && <p role="alert">{t("session.failed", { reason: error })}</p>}
      </form>
      <LanguageSwitch />
    </main>
  );
}
