/** Loading, empty and error states every page shows the same way. */
import { useEffect, useState, type ReactNode } from "react";
import { ApiError } from "../api/client";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state state-empty">{children}</div>;
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return "Something went wrong.";
}

/** An error with a retry: counts down Retry-After when the API gave one. */
export function ErrorState({ error, onRetry, title }: { error: unknown; onRetry?: () => void; title?: string }) {
  const retryAfter = error instanceof ApiError ? error.retryAfterS : null;
  const [wait, setWait] = useState(retryAfter ?? 0);
  useEffect(() => {
    setWait(retryAfter ?? 0);
  }, [retryAfter, error]);
  useEffect(() => {
    if (wait <= 0) return;
    const timer = window.setTimeout(() => setWait((w) => w - 1), 1000);
    return () => window.clearTimeout(timer);
  }, [wait]);
  return (
    <div className="state state-error" role="alert">
      <strong>{title ?? "Could not load this."}</strong> <span>{errorText(error)}</span>
      {onRetry && (
        <button type="button" onClick={onRetry} disabled={wait > 0}>
          {wait > 0 ? `Retry in ${wait}s` : "Retry"}
        </button>
      )}
    </div>
  );
}

/** Renders a query's three states; `isEmpty` decides when loaded data counts as empty. */
export function QueryView<T>({
  query,
  empty,
  isEmpty,
  children,
  loadingLabel,
}: {
  query: { data: T | undefined; error: unknown; isPending: boolean; refetch: () => unknown };
  empty?: ReactNode;
  isEmpty?: (data: T) => boolean;
  children: (data: T) => ReactNode;
  loadingLabel?: string;
}) {
  if (query.isPending) return <Loading label={loadingLabel} />;
  if (query.error || query.data === undefined) {
    return <ErrorState error={query.error} onRetry={() => void query.refetch()} />;
  }
  if (isEmpty?.(query.data) && empty !== undefined) return <Empty>{empty}</Empty>;
  return <>{children(query.data)}</>;
}
