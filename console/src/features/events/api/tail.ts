// The live tail of a subject pattern: GET /v1/events/stream (Server-Sent Events, filtered by the gateway to the
// caller's scope). Read with fetch rather than EventSource: the gateway names each frame by its CloudEvent type
// (`event: io.opsbus.alert.fired.v1`), and EventSource only hands over frames whose names were listened for.
// Pausing aborts the request and keeps the last sequence; resuming asks for the events after it, so nothing is
// lost or doubled while paused. An undecodable entry arrives as an `undecodable` frame (its sequence and the
// reason, none of its bytes): it is shown as such and the tail keeps going.
import { useEffect, useRef, useState } from "react";

export type CloudEvent = { id: string; type: string; subject?: string; time?: string; traceparent?: string } & Record<
  string,
  unknown
>;

export type TailItem =
  | { kind: "event"; sequence: number; event: CloudEvent }
  | { kind: "undecodable"; sequence: number; reason: string };

export type TailState = "idle" | "connecting" | "live" | "paused" | "error";

export const MAX_ITEMS = 500;

export interface Frame {
  id: string;
  event: string;
  data: string;
}

/** Splits SSE text into complete frames; returns them and the incomplete rest to keep for the next chunk. */
export function splitFrames(buffer: string): { frames: Frame[]; rest: string } {
  const normalized = buffer.replace(/\r\n?/g, "\n");
  const blocks = normalized.split("\n\n");
  const rest = blocks.pop() ?? "";
  const frames: Frame[] = [];
  for (const block of blocks) {
    const frame: Frame = { id: "", event: "message", data: "" };
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":") || line === "") continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") frame.id = value;
      else if (field === "event") frame.event = value;
      else if (field === "data") data.push(value);
    }
    frame.data = data.join("\n");
    if (data.length > 0) frames.push(frame);
  }
  return { frames, rest };
}

/** One frame as the tail keeps it; null for frames that are no entry of the stream (`dropped`). */
export function itemOf(frame: Frame): TailItem | null {
  const sequence = Number(frame.id);
  if (frame.id === "" || !Number.isSafeInteger(sequence)) return null;
  try {
    const value = JSON.parse(frame.data) as Record<string, unknown>;
    if (frame.event === "undecodable") return { kind: "undecodable", sequence, reason: String(value.reason ?? "") };
    if (typeof value.id !== "string" || typeof value.type !== "string") {
      return { kind: "undecodable", sequence, reason: "not a CloudEvent" };
    }
    return { kind: "event", sequence, event: value as CloudEvent };
  } catch {
    return { kind: "undecodable", sequence, reason: "not JSON" };
  }
}

/** The W3C trace id of an event's `traceparent`, or null. */
export function traceIdOf(event: CloudEvent): string | null {
  const id = typeof event.traceparent === "string" ? event.traceparent.split("-")[1] : undefined;
  return id && /^[0-9a-f]{32}$/.test(id) && !/^0+$/.test(id) ? id : null;
}

/** The tail of `pattern`; mount it with `key={pattern}` so another pattern starts afresh. */
export function useTail(pattern: string | null) {
  const [items, setItems] = useState<TailItem[]>([]);
  const [state, setState] = useState<TailState>("connecting");
  const [error, setError] = useState("");
  const [running, setRunning] = useState(true);
  const [attempt, setAttempt] = useState(0);
  const last = useRef<number | null>(null);

  useEffect(() => {
    if (!pattern || !running) return;
    const abort = new AbortController();
    const params = new URLSearchParams({ pattern });
    if (last.current !== null) params.set("after", String(last.current));
    const read = async () => {
      const response = await fetch(`/v1/events/stream?${params.toString()}`, {
        credentials: "same-origin",
        headers: { Accept: "text/event-stream" },
        signal: abort.signal,
      });
      if (!response.ok || !response.body) {
        const problem = (await response.json().catch(() => ({}))) as { detail?: string };
        throw new Error(problem.detail ?? response.statusText);
      }
      setState("live");
      setError("");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { frames, rest } = splitFrames(buffer + value);
        buffer = rest;
        const fresh = frames.map(itemOf).filter((i): i is TailItem => i !== null);
        const newest = fresh[fresh.length - 1];
        if (newest) {
          last.current = newest.sequence;
          setItems((current) => [...fresh.reverse(), ...current].slice(0, MAX_ITEMS));
        }
      }
      throw new Error("the gateway ended the stream");
    };
    let retry: ReturnType<typeof setTimeout> | undefined;
    read().catch((e: unknown) => {
      if (abort.signal.aborted) return;
      setState("error");
      setError(e instanceof Error ? e.message : String(e));
      // a dropped or broken stream resumes after the last event seen, as EventSource would
      retry = setTimeout(() => setAttempt((n) => n + 1), 3000);
    });
    return () => {
      clearTimeout(retry);
      abort.abort();
    };
  }, [pattern, running, attempt]);

  const shown: TailState = !pattern ? "idle" : !running ? "paused" : state;
  return {
    items,
    state: shown,
    error,
    pause: () => setRunning(false),
    resume: () => {
      setState("connecting");
      setRunning(true);
    },
    clear: () => setItems([]),
  };
}
