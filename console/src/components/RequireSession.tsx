// Pages behind sign-in: without a session the reader goes to /signin and comes back afterwards.
import type { ReactNode } from "react";
import { Navigate, useLocation } from "react-router";
import { useSession } from "../session/SessionProvider";
import { Loading } from "./QueryState";

export function RequireSession({ children }: { children: ReactNode }) {
  const { session, loading } = useSession();
  const location = useLocation();
  if (loading) return <Loading />;
  if (!session) {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/signin?next=${next}`} replace />;
  }
  return children;
}
