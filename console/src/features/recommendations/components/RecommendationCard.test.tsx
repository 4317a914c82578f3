import { screen } from "@testing-library/react";
import userEventLib from "@testing-library/user-event";
import { api } from "../../../api/client";
import { renderWith } from "../../../test/render";
import { recommendation, usage } from "../api/fixtures";
import { totals } from "../api/money";
import { RecommendationCard } from "./RecommendationCard";
import { Totals } from "./Totals";
import { UsageCharts } from "./UsageCharts";

const userEvent = userEventLib.setup({ delay: null });
vi.setConfig({ testTimeout: 30_000 });

function gateway(applyStatus: number, applyBody: unknown) {
  vi.spyOn(api, "GET").mockImplementation((async () => ({
    data: { namespace: "shop", workload: "web", containers: [usage] },
    response: new Response(null, { status: 200 }),
  })) as unknown as typeof api.GET);
  vi.spyOn(api, "POST").mockImplementation((async () => ({
    error: applyBody,
    response: new Response(null, { status: applyStatus }),
  })) as unknown as typeof api.POST);
}

afterEach(() => vi.restoreAllMocks());

test("an apply a guardrail refuses shows the guardrail's reason", async () => {
  gateway(422, { title: "refused", status: 422, detail: "rollout in progress: web" });
  renderWith(<RecommendationCard item={recommendation("r1", "shop", -40, 100)} canApply />);
  expect(screen.getByText(/Saves \$40.00 a month/)).toBeInTheDocument();
  expect(screen.getByRole("rowheader", { name: "app" })).toBeInTheDocument();
  expect(screen.getByText("120m")).toBeInTheDocument();
  await userEvent.click(screen.getByRole("button", { name: "Usage against requests and limits" }));
  expect(await screen.findAllByRole("img", { name: /Usage distribution of/ })).toHaveLength(2);
  await userEvent.click(screen.getByRole("button", { name: "Apply" }));
  expect(await screen.findByTestId("apply-refused")).toHaveTextContent("Refused by a guardrail: rollout in progress: web");
});

test("a viewer sees the money but no apply button", () => {
  renderWith(<RecommendationCard item={recommendation("r1", "shop", 25, 100)} canApply={false} />, { role: "viewer" });
  expect(screen.getByText(/Adds \$25.00 a month/)).toBeInTheDocument();
  expect(screen.queryByRole("button", { name: "Apply" })).toBeNull();
  expect(screen.queryByRole("button", { name: "Check (dry run)" })).toBeNull();
});

test("usage percentiles are written beside the chart, with request, limit and recommendation", () => {
  const rec = recommendation("r1", "shop", -40, 100).recommendation.containers ?? [];
  renderWith(<UsageCharts usage={[usage]} containers={rec} />);
  expect(screen.getByText(/CPU: p50 80m, p95 100m, p99 110m/)).toHaveTextContent("request 1.00 cores, limit 2.00 cores, recommended 120m");
  expect(screen.getAllByRole("img", { name: /Usage distribution of/ })).toHaveLength(2);
});

test("totals per namespace and for the cluster", () => {
  renderWith(<Totals {...totals([recommendation("a", "shop", -40, 100), recommendation("b", "pay", 10, 50)])} />);
  expect(screen.getByTestId("total-saved")).toHaveTextContent("$40.00");
  expect(screen.getByRole("rowheader", { name: "shop" })).toBeInTheDocument();
  expect(screen.getByRole("rowheader", { name: "pay" })).toBeInTheDocument();
});
