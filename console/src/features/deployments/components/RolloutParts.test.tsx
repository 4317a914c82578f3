import { screen, within } from "@testing-library/react";
import userEventLib from "@testing-library/user-event";
import { renderWith } from "../../../test/render";
import { rollout } from "../api/fixtures";
import { revisionChanges } from "../api/revisions";
import { retryOf } from "../api/requests";
import { AnalysisRuns } from "./AnalysisRuns";
import { CanarySteps } from "./CanarySteps";
import { ReplicaSets } from "./ReplicaSets";
import { RevisionHistory } from "./RevisionHistory";
import { RolloutActions } from "./RolloutActions";

const userEvent = userEventLib.setup({ delay: null });
vi.setConfig({ testTimeout: 30_000 });

test("a failed analysis shows each measurement against the threshold, and a chart named for it", () => {
  renderWith(<AnalysisRuns rollout={rollout()} />);
  expect(screen.getByRole("heading", { name: "success-rate: failed" })).toBeInTheDocument();
  expect(screen.getByText(/success-rate >= 0.95/)).toBeInTheDocument();
  expect(screen.getByText("#1: 0.42 (failed)")).toBeInTheDocument();
  expect(screen.getByRole("img", { name: /Measurements of success-rate against the threshold/ })).toBeInTheDocument();
});

test("the canary's steps show weights, pauses and the current step", () => {
  renderWith(<CanarySteps rollout={rollout({ state: "running", step: 2, stage: "analyse" })} />);
  const steps = screen.getAllByRole("listitem");
  expect(steps).toHaveLength(2);
  expect(within(steps[0]!).getByText("20% of replicas")).toBeInTheDocument();
  expect(within(steps[0]!).getByText("done")).toBeInTheDocument();
  expect(steps[1]).toHaveAttribute("aria-current", "step");
  expect(within(steps[1]!).getByText("analysis: success-rate")).toBeInTheDocument();
});

test("a canary with a traffic router shows its steps as traffic and the route's current split", () => {
  const base = rollout();
  const router = { kind: "HTTPRoute" as const, name: "web", stable_service: "web", canary_service: "web-canary" };
  renderWith(
    <CanarySteps
      rollout={{ ...base, state: "running", step: 2, stage: "pause", canary_weight: 50, canary: { ...base.canary!, router } }}
    />,
  );
  expect(screen.getByText("HTTPRoute web now sends 50% of traffic to the canary, 50% to the stable")).toBeInTheDocument();
  const steps = screen.getAllByRole("listitem");
  expect(within(steps[0]!).getByText("20% of traffic")).toBeInTheDocument();
});

test("new and old ReplicaSets with their images and ready pods", () => {
  renderWith(
    <ReplicaSets
      error={null}
      sets={[
        { name: "web-canary-1", deployment: "web-canary", role: "new", revision: 1, images: { app: "web:2" }, replicas: 2, ready: 1, created_at: null },
        { name: "web-7", deployment: "web", role: "old", revision: 2, images: { app: "web:1" }, replicas: 4, ready: 4, created_at: null },
      ]}
    />,
  );
  expect(screen.getByRole("heading", { name: "New: web-canary-1" })).toBeInTheDocument();
  expect(screen.getByText("1 of 2 ready")).toBeInTheDocument();
  expect(screen.getByText("app: web:1")).toBeInTheDocument();
});

test("an operator promotes only a paused rollout, aborts a running one, retries a finished one; a viewer gets none", async () => {
  const calls: unknown[] = [];
  const props = { busy: false, onCommand: (k: string, r: string) => calls.push([k, r]), onRetry: () => calls.push("retry") };
  const { unmount } = renderWith(<RolloutActions rollout={rollout({ state: "running", phase: "progressing" })} canAct {...props} />);
  expect(screen.getByRole("button", { name: "Promote" })).toBeDisabled();
  await userEvent.type(screen.getByLabelText("Reason (for the audit trail)"), "bad build");
  await userEvent.click(screen.getByRole("button", { name: "Abort" }));
  expect(calls).toEqual([["abort", "bad build"]]);
  unmount();
  const finished = renderWith(<RolloutActions rollout={rollout()} canAct {...props} />);
  await userEvent.click(screen.getByRole("button", { name: "Retry" }));
  expect(calls.at(-1)).toBe("retry");
  finished.unmount();
  renderWith(<RolloutActions rollout={rollout()} canAct={false} {...props} />, { role: "viewer" });
  expect(screen.queryByRole("button")).toBeNull();
});

test("a retry requests the same images, steps and analysis again", () => {
  const body = retryOf(rollout());
  expect(body.workload).toEqual({ kind: "Deployment", namespace: "shop", name: "web" });
  expect(body.images).toEqual({ app: "registry.example/web:2" });
  expect(body.canary?.steps.map((s) => s.weight)).toEqual([20, 50]);
  expect(body.reason).toBe("retry of req-1");
});

test("what changed between revisions: the images per container (a revision recorded without its template)", () => {
  const r = (revision: number, image: string) => ({ revision, deployment_id: `d${revision}`, images: { app: image }, outcome: "succeeded", recorded_at: "2026-01-01T10:00:00Z" });
  const changes = revisionChanges([r(3, "web:3"), r(2, "web:2"), r(1, "web:2")]);
  expect(changes.map((c) => c.changes.map(({ container, from, to }) => ({ container, from, to })))).toEqual([
    [{ container: "app", from: "web:2", to: "web:3" }],
    [],
    [{ container: "app", from: null, to: "web:2" }],
  ]);
});

const templated = (revision: number, strategy: string, container: Record<string, unknown>, extra: Record<string, unknown>[] = []) => ({
  revision,
  deployment_id: `d${revision}`,
  images: { app: String(container.image) },
  outcome: "good",
  recorded_at: "2026-01-01T10:00:00Z",
  strategy,
  template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "app", ...container }, ...extra] } },
});

test("what changed between revisions: strategy, env, resources, command and args, and a container added", () => {
  const before = templated(1, "rolling", {
    image: "web:1",
    env: [{ name: "LOG_LEVEL", value: "info" }, { name: "OLD", value: "1" }],
    resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
    command: ["/server"],
  });
  const after = templated(
    2,
    "canary",
    {
      image: "web:1",
      env: [{ name: "LOG_LEVEL", value: "debug" }, { name: "TOKEN", valueFrom: { secretKeyRef: { name: "t", key: "k" } } }],
      resources: { requests: { cpu: "250m", memory: "128Mi" }, limits: { memory: "512Mi" } },
      command: ["/server"],
      args: ["--port", "8080"],
    },
    [{ name: "proxy", image: "envoy:1" }],
  );
  renderWith(<RevisionHistory workload="Deployment/shop/web" revisions={[after, before]} rollouts={[]} />);
  const [newest, first] = screen.getAllByRole("listitem").filter((li) => li.parentElement?.tagName === "OL");
  expect([...within(newest!).getAllByRole("listitem")].map((li) => li.textContent)).toEqual([
    "strategy: rolling → canary",
    "app: env LOG_LEVEL: info → debug",
    "app: env OLD: 1 → none",
    'app: env TOKEN: none → {"secretKeyRef":{"name":"t","key":"k"}}',
    "app: requests cpu: 100m → 250m",
    "app: limits memory: 256Mi → 512Mi",
    "app: args: none → --port 8080",
    "container proxy added",
  ]);
  // the first revision recorded lists what it ran
  expect(within(first!).getByText("app: none → web:1")).toBeInTheDocument();
  expect(within(first!).getByText("app: command: none → /server")).toBeInTheDocument();
});

test("the same pod template again says so", () => {
  const same = templated(1, "rolling", { image: "web:1" });
  renderWith(<RevisionHistory workload="Deployment/shop/web" revisions={[{ ...same, revision: 2 }, same]} rollouts={[]} />);
  expect(screen.getByText("nothing changed in the pod template")).toBeInTheDocument();
});
