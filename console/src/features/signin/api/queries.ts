// How one may sign in (GET /v1/session/methods, public): the sign-in page offers SSO only when the gateway has it.
import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../../../api/client";
import { roots } from "../../../api/keys";

export const signInKeys = { methods: () => [roots.signin, "methods"] as const };

export function useSignInMethods() {
  return useQuery({
    queryKey: signInKeys.methods(),
    queryFn: async () => unwrap(await api.GET("/v1/session/methods")),
    staleTime: 5 * 60_000,
  });
}

/** The gateway's start of the SSO flow; it sends the browser back to `next` once signed in. */
export function ssoLoginUrl(next: string): string {
  return `/v1/session/oidc/login?${new URLSearchParams({ next }).toString()}`;
}
