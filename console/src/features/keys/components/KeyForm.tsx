// Create a key: name, role, namespaces, clusters and expiry. The gateway refuses a wider role or scope than yours.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { KeyCreate } from "../api/queries";

const ROLES = ["viewer", "operator", "admin"] as const;

function names(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export function KeyForm({ onCreate, busy }: { onCreate: (body: KeyCreate) => void; busy: boolean }) {
  const { t } = useTranslation();
  const [name, setName] = useState("");
  const [role, setRole] = useState<KeyCreate["role"]>("viewer");
  const [namespaces, setNamespaces] = useState("");
  const [clusters, setClusters] = useState("*");
  const [days, setDays] = useState("90");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const ttl = days.trim() ? Math.round(Number(days) * 86400) : null;
    onCreate({ name: name.trim(), role, namespaces: names(namespaces), clusters: names(clusters), ttl_seconds: ttl });
  };
  return (
    <form className="filters" aria-labelledby="key-form-title" onSubmit={submit}>
      <h2 id="key-form-title">{t("keys.create")}</h2>
      <label>
        {t("keys.name")}
        <input required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} aria-describedby="key-name-help" />
      </label>
      <small id="key-name-help">{t("keys.nameHelp")}</small>
      <label>
        {t("keys.role")}
        <select value={role} onChange={(e) => setRole(e.target.value as KeyCreate["role"])}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {t(`keys.roles.${r}`)}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t("keys.namespaces")}
        <input required value={namespaces} onChange={(e) => setNamespaces(e.target.value)} aria-describedby="key-ns-help" />
      </label>
      <small id="key-ns-help">{t("keys.namespacesHelp")}</small>
      <label>
        {t("keys.clusters")}
        <input required value={clusters} onChange={(e) => setClusters(e.target.value)} aria-describedby="key-cl-help" />
      </label>
      <small id="key-cl-help">{t("keys.clustersHelp")}</small>
      <label>
        {t("keys.ttlDays")}
        <input type="number" min={1} max={400} value={days} onChange={(e) => setDays(e.target.value)} aria-describedby="key-ttl-help" />
      </label>
      <small id="key-ttl-help">{t("keys.ttlHelp")}</small>
      <button type="submit" disabled={busy}>
        {t("keys.submit")}
      </button>
    </form>
  );
}
