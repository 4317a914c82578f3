// Routes (bookmarkable: filters live in the URL) and the providers every page relies on.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { BrowserRouter, Route, Routes } from "react-router";
import { Layout } from "./components/Layout";
import { RequireSession } from "./components/RequireSession";
import { ApprovalsPage } from "./features/approvals/routes/ApprovalsPage";
import { DeploymentsPage } from "./features/deployments/routes/DeploymentsPage";
import { RolloutPage } from "./features/deployments/routes/RolloutPage";
import { RecommendationsPage } from "./features/recommendations/routes/RecommendationsPage";
import { AuditPage } from "./features/audit/routes/AuditPage";
import { ChangesPage } from "./features/changes/routes/ChangesPage";
import { EventsPage } from "./features/events/routes/EventsPage";
import { KeysPage } from "./features/keys/routes/KeysPage";
import { IncidentPage } from "./features/incidents/routes/IncidentPage";
import { IncidentsPage } from "./features/incidents/routes/IncidentsPage";
import { OverviewPage } from "./features/overview/routes/OverviewPage";
import { PoliciesPage } from "./features/policies/routes/PoliciesPage";
import { DeliveriesPage } from "./features/routing/routes/DeliveriesPage";
import { RoutingPage } from "./features/routing/routes/RoutingPage";
import { SilencesPage } from "./features/routing/routes/SilencesPage";
import { SignInPage } from "./features/signin/routes/SignInPage";
import { LiveProvider } from "./live/LiveProvider";
import { SessionProvider, useSession } from "./session/SessionProvider";

function Live({ children }: { children: ReactNode }) {
  const { session } = useSession();
  return <LiveProvider enabled={session !== null}>{children}</LiveProvider>;
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/signin" element={<SignInPage />} />
      <Route
        element={
          <RequireSession>
            <Layout />
          </RequireSession>
        }
      >
        <Route index element={<OverviewPage />} />
        <Route path="incidents" element={<IncidentsPage />} />
        <Route path="incidents/:id" element={<IncidentPage />} />
        <Route path="approvals" element={<ApprovalsPage />} />
        <Route path="deployments" element={<DeploymentsPage />} />
        <Route path="deployments/:id" element={<RolloutPage />} />
        <Route path="recommendations" element={<RecommendationsPage />} />
        <Route path="changes" element={<ChangesPage />} />
        <Route path="audit" element={<AuditPage />} />
        <Route path="events" element={<EventsPage />} />
        <Route path="keys" element={<KeysPage />} />
        <Route path="policies" element={<PoliciesPage />} />
        <Route path="routing" element={<RoutingPage />} />
        <Route path="silences" element={<SilencesPage />} />
        <Route path="deliveries" element={<DeliveriesPage />} />
        <Route path="*" element={<OverviewPage />} />
      </Route>
    </Routes>
  );
}

export function App({ client = new QueryClient({ defaultOptions: { queries: { staleTime: 10_000 } } }) }) {
  return (
    <QueryClientProvider client={client}>
      <SessionProvider>
        <Live>
          <BrowserRouter>
            <AppRoutes />
          </BrowserRouter>
        </Live>
      </SessionProvider>
    </QueryClientProvider>
  );
}
