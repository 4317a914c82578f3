/// <reference types="vitest/config" />
// Builds the console into the gateway's package (services/gateway/src/opsbus/gateway/console), which serves it
// at `/`; `npm run dev` proxies the API to a gateway on 127.0.0.1:8000.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../services/gateway/src/opsbus/gateway/console",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    modulePreload: { polyfill: false },
  },
  server: { proxy: { "/v1": "http://127.0.0.1:8000" } },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["src/test/setup.ts"],
    css: false,
    // the machines running `make test` are shared: a render that takes 50 ms alone takes seconds under load
    testTimeout: 30_000,
  },
});
