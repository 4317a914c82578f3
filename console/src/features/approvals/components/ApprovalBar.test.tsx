import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { pending } from "../../../test/fixtures";
import { renderWith } from "../../../test/render";
import { ApprovalBar } from "./ApprovalBar";

test("an operator approves or rejects with a comment; rejecting needs a reason", async () => {
  const decided: unknown[] = [];
  renderWith(<ApprovalBar item={pending} canDecide onDecide={(d) => decided.push(d)} />);
  expect(screen.getByRole("button", { name: "Approve" })).toBeEnabled();
  const reject = screen.getByRole("button", { name: "Reject" });
  expect(reject).toBeDisabled();
  await userEvent.type(screen.getByLabelText("Comment"), "not during business hours");
  expect(reject).toBeEnabled();
  expect(screen.getByText(/Expires/)).toBeInTheDocument();
  await userEvent.click(reject);
  expect(decided).toEqual([{ recoveryId: "rec-1", step: 1, approve: false, text: "not during business hours" }]);
});

test("a viewer sees the approval and its expiry but no button", () => {
  renderWith(<ApprovalBar item={pending} canDecide={false} />, { role: "viewer" });
  expect(screen.getByText(/drain_node requires approval/)).toBeInTheDocument();
  expect(screen.getByText(/Expires/)).toBeInTheDocument();
  expect(screen.queryByRole("button")).toBeNull();
});
