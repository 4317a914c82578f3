import { cpu, memory, totals } from "./money";
import { recommendation } from "./fixtures";

test("open recommendations are summed per namespace and for the cluster, savings apart from risks", () => {
  const items = [
    recommendation("r1", "shop", -40, 100),
    recommendation("r2", "shop", -10, 50),
    recommendation("r3", "pay", 25, 80),
    recommendation("r4", "pay", -99, 300, "applied"),
  ];
  const { cluster, namespaces } = totals(items);
  expect(cluster).toMatchObject({ count: 3, saved: 50, risked: 25, monthlyNow: 230 });
  expect(namespaces.map((n) => [n.key, n.saved, n.risked])).toEqual([
    ["shop", 50, 0],
    ["pay", 0, 25],
  ]);
});

test("quantities read as an operator writes them", () => {
  expect(cpu(250)).toBe("250m");
  expect(cpu(1500)).toBe("1.50 cores");
  expect(memory(256 * 1024 * 1024)).toBe("256 MiB");
  expect(memory(null)).toBe("-");
});
