// Features do not import each other (import/no-restricted-paths), like import-linter on the Python side:
// shared code lives in src/components, src/api, src/session, src/live and src/i18n.
import js from "@eslint/js";
import importPlugin from "eslint-plugin-import";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

const features = ["signin", "overview", "incidents", "approvals", "changes", "audit", "events", "keys", "policies", "routing", "deployments", "recommendations"];

export default tseslint.config(
  { ignores: ["node_modules", "src/api/schema.d.ts", "coverage"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.{ts,tsx}"],
    languageOptions: { globals: { ...globals.browser } },
    plugins: { import: importPlugin, "react-hooks": reactHooks },
    settings: { "import/resolver": { typescript: true, node: true } },
    rules: {
      ...reactHooks.configs.recommended.rules,
      "react-hooks/incompatible-library": "off", // no React Compiler here
      "import/no-restricted-paths": [
        "error",
        {
          zones: [
            ...features.map((feature) => ({
              target: `./src/features/${feature}`,
              from: "./src/features",
              except: [`./${feature}`],
              message: "features do not import each other: move what they share to src/components or src/api",
            })),
            {
              target: ["./src/components", "./src/api", "./src/session", "./src/live"],
              from: "./src/features",
              message: "shared code does not depend on a feature",
            },
            {
              // i18n registers each feature's own translations (features/<feature>/locales.ts), nothing else
              target: "./src/i18n",
              from: "./src/features",
              except: features.map((feature) => `./${feature}/locales.ts`),
              message: "i18n imports only a feature's locales.ts",
            },
          ],
        },
      ],
    },
  },
  { files: ["scripts/**/*.mjs"], languageOptions: { globals: { ...globals.node } } },
);
