// The typed client of the gateway's API, generated from its OpenAPI document (schema.d.ts: `make console-client`).
// Same origin, the session cookie goes along; every mutating call carries the session's CSRF token.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Incident = Schemas["Incident"];
export type ChainEvent = Schemas["ChainEvent"];
export type PendingApproval = Schemas["PendingApproval"];
export type SessionView = Schemas["SessionView"];
export type Identity = Schemas["Identity"];
export type PastEvent = Schemas["PastEvent"];
export type AuditEntry = Schemas["AuditEntry"];

let csrfToken: string | null = null;

/** Set by the session once signed in; cleared on sign-out. */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

const csrf: Middleware = {
  onRequest({ request }) {
    if (!SAFE.has(request.method) && csrfToken) {
      request.headers.set("X-CSRF-Token", csrfToken);
    }
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(csrf);

/** A problem+json answer (RFC 9457) as an Error, so TanStack Query shows it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(detail);
  }
}

/** The data of an openapi-fetch answer, or an ApiError with the problem's detail. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || result.data === undefined) {
    const problem = result.error as { detail?: string } | undefined;
    throw new ApiError(result.response.status, problem?.detail ?? result.response.statusText);
  }
  return result.data;
}
