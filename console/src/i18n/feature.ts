// A feature's translations (features/<feature>/locales.ts): English and Simplified Chinese, both complete, under
// the feature's own top-level key so features never overwrite each other or the shared strings.
export type Messages = { [key: string]: string | Messages };

export interface FeatureLocales {
  en: Messages;
  zhCN: Messages;
}
