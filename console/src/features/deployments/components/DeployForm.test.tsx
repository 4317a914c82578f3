import { screen } from "@testing-library/react";
import userEventLib from "@testing-library/user-event";
import type { DeploymentRequest } from "../api/queries";
import { renderWith } from "../../../test/render";
import { DeployForm } from "./DeployForm";

const userEvent = userEventLib.setup({ delay: null });
vi.setConfig({ testTimeout: 30_000 });

test("a canary request carries its steps and the analysis on the last step", async () => {
  const sent: DeploymentRequest[] = [];
  renderWith(<DeployForm busy={false} onSubmit={(b) => sent.push(b)} />);
  await userEvent.click(screen.getByLabelText("Namespace"));
  await userEvent.paste("shop");
  await userEvent.click(screen.getByLabelText("Deployment"));
  await userEvent.paste("web");
  await userEvent.click(screen.getByLabelText("Image"));
  await userEvent.paste("registry.example/web:2");
  await userEvent.clear(screen.getByLabelText("Weight (%) of step 2"));
  await userEvent.click(screen.getByLabelText("Weight (%) of step 2"));
  await userEvent.paste("60");
  await userEvent.click(screen.getByLabelText("Gate with a Prometheus analysis"));
  await userEvent.click(screen.getByLabelText("PromQL query"));
  await userEvent.paste("sum(rate(ok[1m]))");
  await userEvent.click(screen.getByRole("button", { name: "Request" }));
  expect(sent).toHaveLength(1);
  const body = sent[0]!;
  expect(body.strategy).toBe("canary");
  expect(body.images).toEqual({ app: "registry.example/web:2" });
  expect(body.canary?.steps.map((s) => [s.weight, s.manual_promotion])).toEqual([
    [20, false],
    [60, true],
  ]);
  expect(body.canary?.steps[0]?.analysis).toBeNull();
  expect(body.canary?.steps[1]?.analysis?.metrics[0]?.success_condition).toEqual({ operator: ">=", threshold: 0.95 });
});
