/** A strategy's parameter change history: newest first, what changed old → new, from which device. */
import { useParamsHistory, type ParamChange } from "../api/agents";
import { useSessions } from "../api/auth";
import { formatDateTime } from "../lib/format";
import { deepEqual } from "../ui/SchemaForm";
import { Empty, ErrorState, Loading } from "../ui/states";

export interface ChangeLine {
  field: string;
  from: unknown;
  to: unknown;
}

/** One line per changed leaf: a nested object (stop loss by weekday) names only the days that changed. */
export function changeLines(changes: ParamChange["changes"]): ChangeLine[] {
  const lines: ChangeLine[] = [];
  const walk = (field: string, from: unknown, to: unknown) => {
    const objects =
      typeof from === "object" && from !== null && !Array.isArray(from) &&
      typeof to === "object" && to !== null && !Array.isArray(to);
    if (!objects) {
      lines.push({ field, from, to });
      return;
    }
    const a = from as Record<string, unknown>;
    const b = to as Record<string, unknown>;
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!deepEqual(a[key], b[key])) walk(`${field}.${key}`, a[key], b[key]);
    }
  };
  for (const [field, pair] of Object.entries(changes)) walk(field, pair[0], pair[1]);
  return lines;
}

export function formatParamValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") return /^\d{2}:\d{2}:00$/.test(value) ? value.slice(0, 5) : value;
  if (typeof value === "number") return String(value);
  return JSON.stringify(value);
}

export function ParamsHistory({ strategy }: { strategy: string }) {
  const history = useParamsHistory(strategy);
  const sessions = useSessions();
  const current = sessions.data?.find((s) => s.current)?.handle;
  const byHandle = new Map((sessions.data ?? []).map((s) => [s.handle, s.device_label]));
  const where = (handle: string | null): string => {
    if (handle === null) return "—";
    if (handle === current) return "this device";
    return byHandle.get(handle) ?? "another device";
  };

  let body;
  if (history.isPending) body = <Loading label="Loading the change history…" />;
  else if (history.error && history.data === undefined) {
    body = <ErrorState error={history.error} onRetry={() => void history.refetch()} />;
  } else {
    const entries = history.data?.pages.flat() ?? [];
    body =
      entries.length === 0 ? (
        <Empty>No changes yet: the defaults are in force until you save.</Empty>
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">When (IST)</th>
                  <th scope="col">What changed</th>
                  <th scope="col">From</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((entry) => (
                  <tr key={entry.id} data-testid="history-entry">
                    <td className="nowrap">{formatDateTime(entry.at)}</td>
                    <td>
                      <ul className="change-list">
                        {changeLines(entry.changes).map((line) => (
                          <li key={line.field}>
                            <code>{line.field}</code> {formatParamValue(line.from)} → <strong>{formatParamValue(line.to)}</strong>
                          </li>
                        ))}
                      </ul>
                    </td>
                    <td title={entry.session_handle ?? undefined}>{where(entry.session_handle)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {history.isFetchNextPageError && (
            <ErrorState
              title="Could not load older changes."
              error={history.error}
              onRetry={() => void history.fetchNextPage()}
            />
          )}
          {history.hasNextPage && !history.isFetchNextPageError && (
            <button
              type="button"
              className="ghost"
              onClick={() => void history.fetchNextPage()}
              disabled={history.isFetchingNextPage}
            >
              {history.isFetchingNextPage ? "Loading…" : "Load more"}
            </button>
          )}
        </>
      );
  }
  return (
    <section className="card params-history" aria-labelledby="history-heading" data-testid="params-history">
      <h2 id="history-heading">Change history</h2>
      {body}
    </section>
  );
}
