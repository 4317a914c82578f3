import { screen, within } from "@testing-library/react";
import { renderWith } from "../../../test/render";
import { RouteTree } from "./RouteTree";

const timers = { group_by: ["alertname"], group_wait_seconds: 30, group_interval_seconds: 300, repeat_interval_seconds: 14400 };

test("the tree shows each route's matchers and receiver, children nested under their parent", () => {
  renderWith(
    <RouteTree
      tree={{
        route: {
          id: "root",
          receiver: "default",
          matchers: [],
          continue: false,
          ...timers,
          routes: [{ id: "r1", receiver: "payments-pager", matchers: ['namespace="payments"'], continue: true, ...timers, routes: [] }],
        },
        receivers: { default: ["webhook/0"], "payments-pager": ["pagerduty/0"] },
        inhibit_rules: 2,
        version: 4,
      }}
    />,
  );
  const tree = screen.getByRole("list", { name: "Routing tree" });
  const child = within(tree).getByText('namespace="payments"').closest("li")!;
  expect(child).toHaveTextContent("receiver payments-pager");
  expect(child).toHaveTextContent("continue");
  expect(within(tree).getByText("every alert")).toBeInTheDocument();
  expect(screen.getByText("payments-pager: pagerduty/0")).toBeInTheDocument();
  expect(screen.getByText("2 inhibition rules")).toBeInTheDocument();
});
