import { useTranslation } from "react-i18next";

export function SeverityBadge({ severity }: { severity: string }) {
  const { t } = useTranslation();
  return <span className={`badge severity-${severity}`}>{t(`severity.${severity}`, severity)}</span>;
}

export function StatusBadge({ status }: { status: string }) {
  const { t } = useTranslation();
  return <span className={`badge status-${status}`}>{t(`status.${status}`, status)}</span>;
}
