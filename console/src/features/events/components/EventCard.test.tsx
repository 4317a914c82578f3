import { screen } from "@testing-library/react";
import { renderWith } from "../../../test/render";
import { EventCard } from "./EventCard";

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

test("an event is pretty-printed with its subject and a link to its trace", () => {
  const event = { id: "e1", type: "io.opsbus.alert.fired.v1", subject: "Pod/payments/api-1", traceparent, data: { a: 1 } };
  renderWith(<EventCard item={{ kind: "event", sequence: 12, event }} jaegerUrl="http://jaeger:16686/" />);
  expect(screen.getByText("io.opsbus.alert.fired.v1")).toBeInTheDocument();
  expect(screen.getByText("Pod/payments/api-1")).toBeInTheDocument();
  expect(screen.getByRole("link", { name: "Trace in Jaeger" })).toHaveAttribute(
    "href",
    "http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736",
  );
  expect(screen.getByLabelText("io.opsbus.alert.fired.v1 12").textContent).toContain('"a": 1');
});

test("an undecodable entry says so, with its sequence and reason", () => {
  renderWith(<EventCard item={{ kind: "undecodable", sequence: 13, reason: "not UTF-8 JSON" }} jaegerUrl={null} />);
  expect(screen.getByText("Undecodable entry #13: not UTF-8 JSON")).toBeInTheDocument();
});
