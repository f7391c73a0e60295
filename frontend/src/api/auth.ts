/** Query hooks for sign-in, the session and this user's devices. */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, call, setCsrfToken, type Schemas } from "./client";

export type AuthStatus = Schemas["AuthStatus"];
export type SessionInfo = Schemas["SessionInfo"];

export const authKeys = {
  status: ["auth", "status"] as const,
  sessions: ["auth", "sessions"] as const,
};

/** Why the last session ended, when the API said so (a 401): shown on the sign-in page it leads to. */
let endedReason: string | null = null;

export function noteSessionEnded(reason: string): void {
  endedReason = reason;
}

export function sessionEndedReason(): string | null {
  return endedReason;
}

function clearSessionEndedReason(): void {
  endedReason = null;
}

export async function fetchStatus(): Promise<AuthStatus> {
  const status = await call(api.GET("/api/auth/status"));
  setCsrfToken(status.authenticated ? (status.csrf_token ?? null) : null);
  return status;
}

export function useStatus() {
  return useQuery({ queryKey: authKeys.status, queryFn: fetchStatus, staleTime: 60_000, retry: 1 });
}

/** After any sign-in, sign-out or revoke: everything cached belonged to the previous session. */
function useSessionChanged() {
  const queryClient = useQueryClient();
  return async (status: AuthStatus | null) => {
    queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== "auth" });
    if (status === null) {
      setCsrfToken(null);
      queryClient.setQueryData(authKeys.status, { authenticated: false } as AuthStatus);
    } else {
      clearSessionEndedReason();
      setCsrfToken(status.csrf_token ?? null);
      queryClient.setQueryData(authKeys.status, status);
    }
    await queryClient.invalidateQueries({ queryKey: authKeys.sessions });
  };
}

export function useStartRedirectSignIn() {
  return useMutation({
    mutationFn: (body: Schemas["LoginRequest"]) => call(api.POST("/api/auth/login", { body })),
  });
}

export function useSetAccessToken() {
  const changed = useSessionChanged();
  return useMutation({
    mutationFn: (body: Schemas["SetAccessTokenRequest"]) => call(api.POST("/api/auth/set-access-token", { body })),
    onSuccess: (status) => changed(status),
  });
}

export function useLogout() {
  const changed = useSessionChanged();
  return useMutation({
    mutationFn: () => call(api.POST("/api/auth/logout")),
    // The page that asked is gone once the session is: the sign-in page it leads to says why.
    onSuccess: () => {
      noteSessionEnded("signed_out");
      return changed(null);
    },
  });
}

export function useSessions(enabled = true) {
  return useQuery({
    queryKey: authKeys.sessions,
    queryFn: () => call(api.GET("/api/auth/sessions")),
    enabled,
    // Another browser may have signed in or out since: always read afresh when the page opens.
    staleTime: 0,
    refetchInterval: 30_000,
  });
}

export function useRevokeSession() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (handle: string) =>
      call(api.DELETE("/api/auth/sessions/{handle}", { params: { path: { handle } } })),
    onSettled: () => queryClient.invalidateQueries({ queryKey: authKeys.sessions }),
  });
}

export function useRevokeOthers() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: () => call(api.POST("/api/auth/sessions/revoke-others")),
    onSettled: () => queryClient.invalidateQueries({ queryKey: authKeys.sessions }),
  });
}
