// API keys (GET/POST/DELETE /v1/keys), console sessions (GET/DELETE /v1/sessions) and the sign-in history (the
// audit trail's console.signin entries). Admins only: the gateway refuses everyone else.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../../../api/client";

export type KeyView = Schemas["KeyView"];
export type KeyCreate = Schemas["KeyCreate"];
export type KeyCreated = Schemas["KeyCreated"];
export type SessionInfo = Schemas["SessionInfo"];

export const keyKeys = {
  keys: ["keys"] as const,
  sessions: ["keys", "sessions"] as const,
  signins: ["keys", "signins"] as const,
};

export function useKeys() {
  return useQuery({ queryKey: keyKeys.keys, queryFn: async () => unwrap(await api.GET("/v1/keys")).items });
}

export function useSessions() {
  return useQuery({
    queryKey: keyKeys.sessions,
    queryFn: async () => unwrap(await api.GET("/v1/sessions", { params: { query: { limit: 100 } } })).items,
  });
}

export function useSignins() {
  return useQuery({
    queryKey: keyKeys.signins,
    queryFn: async () =>
      unwrap(await api.GET("/v1/audit", { params: { query: { action: "console.signin", limit: 50 } } })).items,
  });
}

export function useCreateKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (body: KeyCreate) => unwrap(await api.POST("/v1/keys", { body })),
    onSuccess: () => void client.invalidateQueries({ queryKey: keyKeys.keys }),
  });
}

export function useRevokeKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (id: string) => unwrap(await api.DELETE("/v1/keys/{key_id}", { params: { path: { key_id: id } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: keyKeys.keys }),
  });
}

export function useEndSession() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.DELETE("/v1/sessions/{session_id}", { params: { path: { session_id: id } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: keyKeys.sessions }),
  });
}
