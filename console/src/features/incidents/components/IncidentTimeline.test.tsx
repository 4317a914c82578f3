import { screen, within } from "@testing-library/react";
import { incident } from "../../../test/fixtures";
import { renderWith } from "../../../test/render";
import { IncidentTimeline } from "./IncidentTimeline";

const action = { kind: "delete_pod", target: { kind: "Pod", namespace: "payments", name: "api-1" } };
const step = (id: string, verb: string, time: string, data: Record<string, unknown>) => ({
  id,
  type: `io.opsbus.recovery.${verb}.v1`,
  time,
  subject: "Pod/payments/api-1",
  data,
});

test("the alert shows its evidence (last log lines, Kubernetes events) and every step its outcome and reason, a no-op too", () => {
  const alert = {
    evidence: {
      logs: [{ container: "api", lines: ["connecting to db", "panic: no route to host"] }],
      events: [{ reason: "BackOff", message: "Back-off restarting failed container api" }],
    },
  };
  renderWith(
    <IncidentTimeline
      incident={incident(1, {
        alert,
        recoveries: [
          step("s1", "planned", "2026-01-01T10:01:00Z", { action, reason: "policy crashloop, step 1", dry_run: true }),
          step("s2", "succeeded", "2026-01-01T10:01:05Z", { action, reason: "dry run: delete_pod not applied" }),
        ],
      })}
    />,
  );
  const fired = screen.getByRole("heading", { name: "Alert fired" }).closest("li")!;
  expect(within(fired).getByRole("heading", { name: "Evidence" })).toBeInTheDocument();
  expect(within(fired).getByText("Last log lines of api")).toBeInTheDocument();
  expect(within(fired).getByText(/panic: no route to host/)).toBeInTheDocument();
  expect(within(fired).getByText("BackOff: Back-off restarting failed container api")).toBeInTheDocument();

  const noop = screen.getByRole("heading", { name: "Recovery succeeded: delete_pod" }).closest("li")!;
  expect(noop).toHaveTextContent("Outcome: succeeded");
  expect(noop).toHaveTextContent("Reason: dry run: delete_pod not applied");
  expect(screen.getByRole("heading", { name: "Recovery planned: delete_pod" }).closest("li")).toHaveTextContent(
    "Reason: policy crashloop, step 1",
  );
});
