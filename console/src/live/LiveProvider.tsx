// One Server-Sent Events connection per tab (GET /v1/live, filtered by the gateway to the caller's namespaces).
// Events update TanStack Query's cache in place: a fired alert is put at the top of the incident lists at once,
// everything else invalidates what it changes. The browser resumes with Last-Event-ID by itself; when the
// gateway refuses or the connection stays down, a new connection resumes from the last cursor seen, and the
// state is shown (connecting, live, reconnecting, lost).
import { useQueryClient, type InfiniteData, type QueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import type { Incident } from "../api/client";
import { roots } from "../api/keys";
import { EVENT_TYPES, incidentIdOf, incidentOf, type CloudEvent } from "./events";

export type LiveState = "connecting" | "live" | "reconnecting" | "lost";
const LiveContext = createContext<LiveState>("connecting");

type Page = { items: Incident[]; next_cursor: string | null };

function matches(filters: Record<string, string | undefined>, incident: Incident): boolean {
  return (
    (!filters.status || filters.status === incident.status) &&
    (!filters.severity || filters.severity === incident.severity) &&
    (!filters.namespace || filters.namespace === incident.namespace) &&
    (!filters.alertname || filters.alertname === incident.alertname)
  );
}

export function applyEvent(client: QueryClient, event: CloudEvent): void {
  if (event.type === "io.opsbus.alert.fired.v1") {
    const incident = incidentOf(event);
    for (const [key, data] of client.getQueriesData<InfiniteData<Page>>({ queryKey: [roots.incidents] })) {
      const filters = (key[1] ?? {}) as Record<string, string | undefined>;
      if (!data || !matches(filters, incident)) continue;
      if (data.pages.some((p) => p.items.some((i) => i.id === incident.id))) continue;
      const [first, ...rest] = data.pages;
      const top = { items: [incident, ...(first?.items ?? [])], next_cursor: first?.next_cursor ?? null };
      client.setQueryData<InfiniteData<Page>>(key, { ...data, pages: [top, ...rest] });
    }
  }
  // the read model follows the bus within moments: refetch what the event changed, twice to be sure
  const refresh = () => {
    void client.invalidateQueries({ queryKey: [roots.incidents] });
    void client.invalidateQueries({ queryKey: [roots.incident, incidentIdOf(event)] });
    void client.invalidateQueries({ queryKey: [roots.overview] });
    if (event.type.startsWith("io.opsbus.recovery.")) void client.invalidateQueries({ queryKey: [roots.approvals] });
  };
  setTimeout(refresh, 300);
  setTimeout(refresh, 1500);
}

export function LiveProvider({ enabled, children }: { enabled: boolean; children: ReactNode }) {
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>("connecting");
  useEffect(() => {
    if (!enabled) return;
    let source: EventSource | null = null;
    let cursor = "";
    let retry: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    const open = () => {
      const url = cursor ? `/v1/live?cursor=${encodeURIComponent(cursor)}` : "/v1/live";
      source = new EventSource(url, { withCredentials: true });
      const seen = (e: MessageEvent) => {
        if (e.lastEventId) cursor = e.lastEventId;
      };
      source.addEventListener("ready", (e) => {
        seen(e as MessageEvent);
        setState("live");
      });
      for (const type of EVENT_TYPES) {
        source.addEventListener(type, (e) => {
          const message = e as MessageEvent<string>;
          seen(message);
          applyEvent(client, JSON.parse(message.data) as CloudEvent);
        });
      }
      source.onerror = () => {
        if (closed || source === null) return;
        if (source.readyState === EventSource.CLOSED) {
          setState("lost");
          retry = setTimeout(open, 3000);
        } else {
          setState("reconnecting");
        }
      };
    };
    open();
    return () => {
      closed = true;
      clearTimeout(retry);
      source?.close();
    };
  }, [client, enabled]);
  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>;
}

export function useLiveState(): LiveState {
  return useContext(LiveContext);
}
