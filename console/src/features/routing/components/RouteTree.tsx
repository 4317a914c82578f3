// The routing tree as nested lists: each route with its matchers, receiver, grouping and timers, children below.
import { useTranslation } from "react-i18next";
import type { RouteView, RoutesView } from "../api/queries";

function RouteNode({ route }: { route: RouteView }) {
  const { t } = useTranslation();
  const children = route.routes ?? [];
  return (
    <li>
      <p className="route">
        <strong>{route.matchers.length > 0 ? route.matchers.join(", ") : t("routing.matchersAll")}</strong>
        {" → "}
        {t("routing.receiver", { receiver: route.receiver })}
        {route.continue && <span className="badge">{t("routing.continue")}</span>}
        <br />
        <small>
          {t("routing.timing", {
            groupBy: route.group_by.join(", ") || "-",
            wait: route.group_wait_seconds,
            interval: route.group_interval_seconds,
            repeat: route.repeat_interval_seconds,
          })}
        </small>
      </p>
      {children.length > 0 && (
        <ul>
          {children.map((child) => (
            <RouteNode key={child.id} route={child} />
          ))}
        </ul>
      )}
    </li>
  );
}

export function RouteTree({ tree }: { tree: RoutesView }) {
  const { t } = useTranslation();
  return (
    <div className="route-tree">
      <ul aria-label={t("routing.tree")}>
        <RouteNode route={tree.route} />
      </ul>
      <h3>{t("routing.receivers")}</h3>
      <ul>
        {Object.entries(tree.receivers).map(([name, integrations]) => (
          <li key={name}>
            {name}: {integrations.join(", ") || "-"}
          </li>
        ))}
      </ul>
      <p>{t("routing.inhibitRules", { count: tree.inhibit_rules })}</p>
    </div>
  );
}
