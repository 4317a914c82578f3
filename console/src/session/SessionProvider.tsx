// Who is signed in: GET /v1/session (the cookie is HttpOnly: script never sees it, only the CSRF token).
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useMemo, type ReactNode } from "react";
import { api, ApiError, setCsrfToken, unwrap, type SessionView } from "../api/client";
import { roots } from "../api/keys";

interface SessionState {
  session: SessionView | null;
  loading: boolean;
  /** Whether the caller's role is at least `role`: the console offers only what the caller may do. */
  can: (role: "viewer" | "operator" | "admin") => boolean;
  signIn: (apiKey: string) => Promise<void>;
  signOut: () => Promise<void>;
}

const RANK = { viewer: 1, operator: 2, admin: 3 } as const;
const SessionContext = createContext<SessionState | null>(null);

async function fetchSession(): Promise<SessionView | null> {
  try {
    const view = unwrap(await api.GET("/v1/session"));
    setCsrfToken(view.csrf_token);
    return view;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setCsrfToken(null);
      return null;
    }
    throw error;
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const query = useQuery({ queryKey: [roots.session], queryFn: fetchSession, staleTime: 60_000, retry: false });
  const signIn = useCallback(
    async (apiKey: string) => {
      const view = unwrap(await api.POST("/v1/session", { body: { api_key: apiKey } }));
      setCsrfToken(view.csrf_token);
      client.setQueryData([roots.session], view);
    },
    [client],
  );
  const signOut = useCallback(async () => {
    await api.DELETE("/v1/session");
    setCsrfToken(null);
    client.clear();
    client.setQueryData([roots.session], null);
  }, [client]);
  const value = useMemo<SessionState>(() => {
    const session = query.data ?? null;
    return {
      session,
      loading: query.isPending,
      can: (role) => session !== null && RANK[session.identity.role] >= RANK[role],
      signIn,
      signOut,
    };
  }, [query.data, query.isPending, signIn, signOut]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (state === null) throw new Error("useSession outside SessionProvider");
  return state;
}
