// react-i18next with English and Simplified Chinese: the language follows the browser, the choice is kept.
import i18n from "i18next";
import LanguageDetector from "i18next-browser-languagedetector";
import { initReactI18next } from "react-i18next";
import { en } from "./en";
import { zhCN } from "./zh-CN";

export const LANGUAGES = ["en", "zh-CN"] as const;

void i18n
  .use(LanguageDetector)
  .use(initReactI18next)
  .init({
    resources: { en: { translation: en }, "zh-CN": { translation: zhCN } },
    supportedLngs: [...LANGUAGES, "zh"], // a browser saying only "zh" gets zh-CN (fallbackLng)
    load: "currentOnly",
    fallbackLng: { zh: ["zh-CN"], default: ["en"] },
    interpolation: { escapeValue: false },
    detection: { order: ["localStorage", "navigator"], caches: ["localStorage"], lookupLocalStorage: "opsbus.lang" },
  });

i18n.on("languageChanged", (lng) => document.documentElement.setAttribute("lang", lng));
document.documentElement.setAttribute("lang", i18n.resolvedLanguage ?? "en");

export default i18n;
