import { traceLink } from "./IncidentPage";

test("an incident with a stored trace id links straight to its trace in Jaeger", () => {
  const incident = { id: "inc-1", source: "watcher", trace_id: "4bf92f3577b34da6a3ce929d0e0e4736" };
  expect(traceLink("http://jaeger:16686/", incident)).toBe("http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736");
});

test("an incident without one (its alert carried no trace context) falls back to Jaeger's search by correlation id", () => {
  const link = traceLink("http://jaeger:16686", { id: "inc-1", source: "alertmanager", trace_id: null });
  expect(link).toMatch(/^http:\/\/jaeger:16686\/search\?service=opsbus-gateway&tags=/);
  expect(decodeURIComponent(link)).toContain('"messaging.message.conversation_id":"inc-1"');
});
