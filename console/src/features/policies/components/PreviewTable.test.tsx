import { screen, within } from "@testing-library/react";
import { renderWith } from "../../../test/render";
import type { PolicyPreview } from "../api/queries";
import { PreviewTable } from "./PreviewTable";

const preview: PolicyPreview = {
  valid: true,
  issues: [],
  current_version: 3,
  assumptions: ["the target is taken to exist"],
  items: [
    {
      incident_id: "inc-1",
      alertname: "KubePodCrashLooping",
      namespace: "shop",
      fired_at: "2026-12-07T10:00:00Z",
      current: { policy: "crashloop", step: 1, action: "delete_pod", decision: "planned", reason: "step 1/2", passed: [] },
      edited: {
        policy: "crashloop",
        step: 1,
        action: "rollout_restart",
        decision: "dry_run",
        reason: "dry run",
        passed: [],
      },
      changed: true,
    },
    {
      incident_id: "inc-2",
      alertname: "KubeNodeNotReady",
      namespace: null,
      fired_at: "2026-12-07T09:00:00Z",
      current: { policy: null, step: null, action: null, decision: "no_policy", reason: "no policy", passed: [] },
      edited: { policy: null, step: null, action: null, decision: "no_policy", reason: "no policy", passed: [] },
      changed: false,
    },
  ],
};

test("each past incident shows what the version in force and the edit would do, changes counted", () => {
  renderWith(<PreviewTable preview={preview} />);
  expect(screen.getByRole("status")).toHaveTextContent("1 of 2 incidents would be handled differently.");
  const table = screen.getByRole("table", { name: "Preview on past incidents" });
  const row = within(table).getByRole("row", { name: /KubePodCrashLooping shop/ });
  expect(row).toHaveTextContent("crashloop step 1: delete_pod");
  expect(row).toHaveTextContent("crashloop step 1: rollout_restart (dry run)");
  expect(within(row).getByRole("link")).toHaveAttribute("href", "/incidents/inc-1");
  expect(within(table).getByRole("row", { name: /KubeNodeNotReady/ })).toHaveTextContent("No policy matches");
});

test("nothing to replay says so", () => {
  renderWith(<PreviewTable preview={{ ...preview, items: [] }} />);
  expect(screen.getByText("No incident to replay yet.")).toBeInTheDocument();
});
