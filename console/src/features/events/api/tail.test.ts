import { itemOf, splitFrames, traceIdOf } from "./tail";

test("frames split across chunks, named by type, comments skipped; the rest waits for the next chunk", () => {
  const text =
    ": connected to alert.>\nretry: 2000\n\n" +
    'id: 7\nevent: io.opsbus.alert.fired.v1\ndata: {"id":"a","type":"io.opsbus.alert.fired.v1"}\n\n' +
    'id: 8\nevent: undecodable\ndata: {"sequence":8,"reason":"not UTF-8 JSON"}\n\n' +
    "id: 9\nevent: io.op";
  const { frames, rest } = splitFrames(text);
  expect(frames.map((f) => [f.id, f.event])).toEqual([
    ["7", "io.opsbus.alert.fired.v1"],
    ["8", "undecodable"],
  ]);
  expect(rest).toBe("id: 9\nevent: io.op");
  expect(frames.map(itemOf)).toEqual([
    { kind: "event", sequence: 7, event: { id: "a", type: "io.opsbus.alert.fired.v1" } },
    { kind: "undecodable", sequence: 8, reason: "not UTF-8 JSON" },
  ]);
});

test("a dropped frame is no entry; a frame that is not a CloudEvent is shown as undecodable", () => {
  expect(itemOf({ id: "", event: "dropped", data: '{"reason":"slow"}' })).toBeNull();
  expect(itemOf({ id: "3", event: "x", data: "[1]" })).toEqual({ kind: "undecodable", sequence: 3, reason: "not a CloudEvent" });
  expect(itemOf({ id: "4", event: "x", data: "{" })).toEqual({ kind: "undecodable", sequence: 4, reason: "not JSON" });
});

test("the trace id comes from a valid traceparent only", () => {
  const id = "4bf92f3577b34da6a3ce929d0e0e4736";
  expect(traceIdOf({ id: "a", type: "t", traceparent: `00-${id}-00f067aa0ba902b7-01` })).toBe(id);
  expect(traceIdOf({ id: "a", type: "t", traceparent: `00-${"0".repeat(32)}-00f067aa0ba902b7-01` })).toBeNull();
  expect(traceIdOf({ id: "a", type: "t" })).toBeNull();
});
