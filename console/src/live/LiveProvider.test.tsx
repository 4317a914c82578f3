// The live connection's state as the operator sees it in the sidebar: "Live" once the gateway's ready frame
// arrives, "reconnecting" while the browser retries by itself, "lost" when the connection is closed for good
// (shown, not hidden), then a new connection that resumes from the last cursor seen. jsdom has no EventSource:
// a stand-in plays the browser's part.
import { act, screen } from "@testing-library/react";
import { LiveIndicator } from "../components/Layout";
import { renderWith } from "../test/render";
import { LiveProvider } from "./LiveProvider";

class FakeEventSource {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;
  static opened: FakeEventSource[] = [];
  readyState = FakeEventSource.CONNECTING;
  onerror: (() => void) | null = null;
  private listeners = new Map<string, ((e: MessageEvent) => void)[]>();

  constructor(readonly url: string) {
    FakeEventSource.opened.push(this);
  }

  addEventListener(type: string, listener: (e: MessageEvent) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  emit(type: string, lastEventId: string): void {
    this.readyState = FakeEventSource.OPEN;
    for (const listener of this.listeners.get(type) ?? []) listener(new MessageEvent(type, { data: "{}", lastEventId }));
  }

  fail(readyState: number): void {
    this.readyState = readyState;
    this.onerror?.();
  }

  close(): void {
    this.readyState = FakeEventSource.CLOSED;
  }
}

beforeEach(() => {
  FakeEventSource.opened = [];
  vi.stubGlobal("EventSource", FakeEventSource);
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

test("a lost connection is shown, and the new one resumes from the last cursor", () => {
  renderWith(
    <LiveProvider enabled>
      <LiveIndicator />
    </LiveProvider>,
  );
  const state = screen.getByTestId("live-state");
  expect(state).toHaveTextContent("Connecting…");
  expect(FakeEventSource.opened.map((s) => s.url)).toEqual(["/v1/live"]);
  const [first] = FakeEventSource.opened;

  act(() => first!.emit("ready", "alert=12;recovery=40;notify=3"));
  expect(state).toHaveTextContent("Live");
  expect(state).toHaveAttribute("data-state", "live");

  act(() => first!.fail(FakeEventSource.CONNECTING)); // the browser retries by itself, with Last-Event-ID
  expect(state).toHaveTextContent("Connection lost: reconnecting…");
  expect(FakeEventSource.opened).toHaveLength(1);

  act(() => first!.fail(FakeEventSource.CLOSED)); // the browser gave up (the gateway refused, or went away)
  expect(state).toHaveTextContent("Connection lost: retrying in a few seconds");
  expect(state).toHaveAttribute("data-state", "lost");
  act(() => vi.advanceTimersByTime(3000));
  expect(FakeEventSource.opened.map((s) => s.url)).toEqual([
    "/v1/live",
    `/v1/live?cursor=${encodeURIComponent("alert=12;recovery=40;notify=3")}`,
  ]);

  act(() => FakeEventSource.opened[1]!.emit("ready", "alert=12;recovery=41;notify=3"));
  expect(state).toHaveTextContent("Live");
});
