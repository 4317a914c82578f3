// Fails when the console's initial JavaScript (the entry script and what index.html preloads) is above the
// budget, gzipped: DESIGN.md section 9 says 250 KB. Run after `vite build` (make console does both).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET = 250 * 1024;
const out = new URL("../../services/gateway/src/opsbus/gateway/console/", import.meta.url).pathname;
const html = readFileSync(join(out, "index.html"), "utf8");
const scripts = [...html.matchAll(/<(?:script[^>]+src|link[^>]+rel="modulepreload"[^>]+href)="\/([^"]+\.js)"/g)].map((m) => m[1]);
if (scripts.length === 0) {
  console.error("no script in index.html: is the console built?");
  process.exit(1);
}
let total = 0;
for (const file of scripts) {
  const size = gzipSync(readFileSync(join(out, file)), { level: 9 }).length;
  total += size;
  console.log(`${file}: ${(size / 1024).toFixed(1)} KB gzipped`);
}
console.log(`initial JavaScript: ${(total / 1024).toFixed(1)} KB gzipped (budget ${BUDGET / 1024} KB)`);
process.exit(total > BUDGET ? 1 : 0);
