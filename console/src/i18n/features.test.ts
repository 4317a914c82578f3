import { FEATURES } from ".";
import type { Messages } from "./feature";

function leaves(messages: Messages, prefix = ""): [string, string][] {
  return Object.entries(messages).flatMap(([k, v]) =>
    typeof v === "string" ? [[`${prefix}${k}`, v] as [string, string]] : leaves(v, `${prefix}${k}.`),
  );
}

test("every feature's translations are complete in both languages and never shared keys", () => {
  const seen = new Set<string>();
  for (const feature of FEATURES) {
    const en = leaves(feature.en);
    const zh = new Map(leaves(feature.zhCN));
    expect([...zh.keys()].sort()).toEqual(en.map(([k]) => k).sort());
    for (const [key] of en) expect(zh.get(key)?.trim(), key).toBeTruthy();
    for (const top of Object.keys(feature.en)) {
      expect(seen.has(top), top).toBe(false);
      seen.add(top);
    }
  }
});
