// The new key's token, shown once: focused so a screen reader reads it, copyable, gone when dismissed.
import { useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import type { KeyCreated } from "../api/queries";

export function SecretOnce({ created, onDismiss }: { created: KeyCreated; onDismiss: () => void }) {
  const { t } = useTranslation();
  const [copied, setCopied] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => box.current?.focus(), []);
  const copy = async () => {
    await navigator.clipboard?.writeText(created.token);
    setCopied(true);
  };
  return (
    <div ref={box} className="approval" role="alert" tabIndex={-1} data-testid="secret-once">
      <p>{t("keys.created", { name: created.name })}</p>
      <label>
        {t("keys.token")}
        <input readOnly value={created.token} onFocus={(e) => e.target.select()} />
      </label>
      <button type="button" onClick={() => void copy()}>
        {copied ? t("keys.copied") : t("keys.copy")}
      </button>
      <button type="button" onClick={onDismiss}>
        {t("keys.dismiss")}
      </button>
    </div>
  );
}
