// Renders a component as the console does: query client, session, router and i18n in place.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactNode } from "react";
import { MemoryRouter } from "react-router";
import type { SessionView } from "../api/client";
import { roots } from "../api/keys";
import { SessionProvider } from "../session/SessionProvider";

export function session(role: Role): SessionView {
  return {
    identity: { kind: "apikey", id: "k1", display_name: `test-${role}`, role, namespaces: ["*"], clusters: ["*"] },
    csrf_token: "csrf",
    expires_at: "2030-01-01T00:00:00Z",
    jaeger_url: null,
  };
}

type Role = "viewer" | "operator" | "admin";

/** `role: null` renders signed out. */
export function renderWith(
  ui: ReactNode,
  { role = "operator", path = "/" }: { role?: Role | null; path?: string } = {},
) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity } } });
  client.setQueryData([roots.session], role === null ? null : session(role));
  return render(
    <QueryClientProvider client={client}>
      <SessionProvider>
        <MemoryRouter initialEntries={[path]}>{ui}</MemoryRouter>
      </SessionProvider>
    </QueryClientProvider>,
  );
}
