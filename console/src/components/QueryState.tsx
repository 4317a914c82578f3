// Loading and error states, the same on every page.
import { useTranslation } from "react-i18next";

export function Loading() {
  const { t } = useTranslation();
  return <p role="status">{t("common.loading")}</p>;
}

export function LoadError({ error }: { error: Error }) {
  const { t } = useTranslation();
  return <p role="alert">{t("common.error", { reason: error.message })}</p>;
}
