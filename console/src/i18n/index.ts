// react-i18next with English and Simplified Chinese: the language follows the browser, the choice is kept.
import i18n from "i18next";
import LanguageDetector from "i18next-browser-languagedetector";
import { initReactI18next } from "react-i18next";
import { en } from "./en";
import { zhCN } from "./zh-CN";
import type { FeatureLocales } from "./feature";
// Each feature's own translations (features/<feature>/locales.ts): one import and one entry in FEATURES per feature.
import { auditLocales } from "../features/audit/locales";
import { changesLocales } from "../features/changes/locales";
import { eventsLocales } from "../features/events/locales";
import { keysLocales } from "../features/keys/locales";
import { deploymentsLocales } from "../features/deployments/locales";
import { recommendationsLocales } from "../features/recommendations/locales";
import { policiesLocales } from "../features/policies/locales";
import { routingLocales } from "../features/routing/locales";

export const FEATURES: FeatureLocales[] = [auditLocales, changesLocales, eventsLocales, keysLocales, policiesLocales, routingLocales, deploymentsLocales, recommendationsLocales];

export const LANGUAGES = ["en", "zh-CN"] as const;

void i18n
  .use(LanguageDetector)
  .use(initReactI18next)
  .init({
    resources: {
      en: { translation: Object.assign({}, en, ...FEATURES.map((f) => f.en)) },
      "zh-CN": { translation: Object.assign({}, zhCN, ...FEATURES.map((f) => f.zhCN)) },
    },
    supportedLngs: [...LANGUAGES, "zh"], // a browser saying only "zh" gets zh-CN (fallbackLng)
    load: "currentOnly",
    fallbackLng: { zh: ["zh-CN"], default: ["en"] },
    interpolation: { escapeValue: false },
    detection: { order: ["localStorage", "navigator"], caches: ["localStorage"], lookupLocalStorage: "opsbus.lang" },
  });

i18n.on("languageChanged", (lng) => document.documentElement.setAttribute("lang", lng));
document.documentElement.setAttribute("lang", i18n.resolvedLanguage ?? "en");

export default i18n;
