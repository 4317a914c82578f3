import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { pending } from "../../../test/fixtures";
import { renderWith } from "../../../test/render";
import { ApprovalBar } from "./ApprovalBar";

test("an operator approves or rejects with a comment; rejecting needs a reason", async () => {
  renderWith(<ApprovalBar item={pending} canDecide />);
  expect(screen.getByRole("button", { name: "Approve" })).toBeEnabled();
  const reject = screen.getByRole("button", { name: "Reject" });
  expect(reject).toBeDisabled();
  await userEvent.type(screen.getByLabelText("Comment"), "not during business hours");
  expect(reject).toBeEnabled();
  expect(screen.getByText(/Expires/)).toBeInTheDocument();
});

test("a viewer sees the approval and its expiry but no button", () => {
  renderWith(<ApprovalBar item={pending} canDecide={false} />, { role: "viewer" });
  expect(screen.getByText(/drain_node requires approval/)).toBeInTheDocument();
  expect(screen.getByText(/Expires/)).toBeInTheDocument();
  expect(screen.queryByRole("button")).toBeNull();
});
