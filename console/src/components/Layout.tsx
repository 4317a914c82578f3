// The frame of every signed-in page: a skip link, the sidebar (navigation, language, live state) and the user.
import { useTranslation } from "react-i18next";
import { NavLink, Outlet } from "react-router";
import { useLiveState } from "../live/LiveProvider";
import { useSession } from "../session/SessionProvider";
import { LanguageSwitch } from "./LanguageSwitch";

export function LiveIndicator() {
  const { t } = useTranslation();
  const state = useLiveState();
  return (
    <p className={`live live-${state}`} role="status" aria-live="polite" data-testid="live-state" data-state={state}>
      {t(`live.${state}`)}
    </p>
  );
}

export function Layout() {
  const { t } = useTranslation();
  const { session, signOut } = useSession();
  return (
    <div className="shell">
      <a className="skip" href="#content">
        {t("app.skip")}
      </a>
      <aside className="sidebar">
        <p className="brand">{t("app.name")}</p>
        <nav aria-label={t("nav.main")}>
          <ul>
            <li>
              <NavLink to="/" end>
                {t("nav.overview")}
              </NavLink>
            </li>
            <li>
              <NavLink to="/incidents">{t("nav.incidents")}</NavLink>
            </li>
            <li>
              <NavLink to="/approvals">{t("nav.approvals")}</NavLink>
            </li>
            <li>
              <NavLink to="/deployments">{t("deployments.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/recommendations">{t("recommendations.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/changes">{t("changes.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/audit">{t("audit.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/events">{t("events.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/keys">{t("keys.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/policies">{t("policies.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/routing">{t("routing.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/silences">{t("silences.nav")}</NavLink>
            </li>
            <li>
              <NavLink to="/deliveries">{t("deliveries.nav")}</NavLink>
            </li>
          </ul>
        </nav>
        <LanguageSwitch />
        <LiveIndicator />
        {session && (
          <div className="user">
            <p>
              {t("session.signedInAs", {
                name: session.identity.display_name ?? session.identity.id,
                role: session.identity.role,
              })}
            </p>
            <button type="button" onClick={() => void signOut()}>
              {t("session.signOut")}
            </button>
          </div>
        )}
      </aside>
      <main id="content" tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}
