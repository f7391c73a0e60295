/**
 * Who is signed in, for the whole SPA. A 401 from any call lands here (one handler): the cached data of
 * the ended session is dropped and the user goes to sign-in with a message, and back to the same page after.
 */
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, type ReactNode } from "react";
import { Navigate, useLocation } from "react-router";
import { setCsrfToken, setUnauthorizedHandler } from "./api/client";
import { authKeys, noteSessionEnded, sessionEndedReason, useStatus, type AuthStatus } from "./api/auth";
import { ErrorState, Loading } from "./ui/states";

const NEXT_KEY = "tradedesk.next";

/** Where to go after signing in: remembered across the broker's redirect (a path, never a secret). */
export function rememberNext(path: string): void {
  if (path.startsWith("/") && !path.startsWith("//") && !path.startsWith("/connect")) {
    sessionStorage.setItem(NEXT_KEY, path);
  }
}

export function takeNext(): string | null {
  const next = sessionStorage.getItem(NEXT_KEY);
  sessionStorage.removeItem(NEXT_KEY);
  return next !== null && next.startsWith("/") && !next.startsWith("//") ? next : null;
}

export function connectPath(reason: string | null, next: string): string {
  const params = new URLSearchParams();
  if (reason) params.set("reason", reason);
  if (next && next !== "/") params.set("next", next);
  const query = params.toString();
  return query ? `/connect?${query}` : "/connect";
}

/** The one 401 handler: drop what the ended session cached; RequireSession then sends the user to sign in. */
export function UnauthorizedRedirect() {
  const queryClient = useQueryClient();
  useEffect(() => {
    setUnauthorizedHandler(() => {
      noteSessionEnded("expired");
      setCsrfToken(null);
      queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== "auth" });
      queryClient.setQueryData(authKeys.status, { authenticated: false } as AuthStatus);
    });
    return () => setUnauthorizedHandler(null);
  }, [queryClient]);
  return null;
}

/** Renders its children only for a signed-in user; otherwise sends them to sign in and back. */
export function RequireSession({ children }: { children: (status: AuthStatus) => ReactNode }) {
  const status = useStatus();
  const location = useLocation();
  if (status.isPending) return <Loading label="Checking your session…" />;
  if (status.error) return <ErrorState error={status.error} onRetry={() => void status.refetch()} />;
  if (!status.data.authenticated) {
    const here = location.pathname + location.search;
    // The broker's callback lands on "/?error=…&message=…" when a sign-in failed: show it on the sign-in page.
    const search = new URLSearchParams(location.search);
    const target = new URLSearchParams();
    for (const key of ["error", "message"]) {
      const value = search.get(key);
      if (value) target.set(key, value);
    }
    const reason = sessionEndedReason();
    if (reason && !search.has("error")) target.set("reason", reason);
    // Coming back after signing out on purpose starts afresh; after an expiry, where the user was.
    if (!search.has("error") && here !== "/" && reason !== "signed_out") target.set("next", here);
    const query = target.toString();
    return <Navigate to={query ? `/connect?${query}` : "/connect"} replace />;
  }
  return <>{children(status.data)}</>;
}
