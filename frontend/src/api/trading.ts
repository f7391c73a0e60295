/** Query hooks for this user's trading figures: P&L, daily stats, trades, positions, risk, broker sync. */
import {
  keepPreviousData,
  useInfiniteQuery,
  useMutation,
  useQuery,
  useQueryClient,
  type QueryClient,
} from "@tanstack/react-query";
import { addDays, financialYear } from "../lib/format";
import {
  api,
  ApiError,
  apiUrl,
  call,
  errorFromResponse,
  NETWORK_ERROR,
  reportUnauthorized,
  type Schemas,
} from "./client";

export type PnlSummary = Schemas["PnlSummary"];
export type CumulativePoint = Schemas["CumulativePoint"];
export type DailyStats = Schemas["DailyStats"];
export type Trade = Schemas["TradeRead"];
export type TradesSummary = Schemas["TradesSummary"];
export type Positions = Schemas["PositionsRead"];
export type Position = Schemas["PositionRead"];
export type Risk = Schemas["RiskRead"];
export type SyncResult = Schemas["SyncResult"];

/** An inclusive range of IST days (YYYY-MM-DD); a missing end is open. */
export interface DayRange {
  from?: string;
  to?: string;
}

export type TradeStatus = "open" | "closed";

/** What the trades list, its summary and its CSV export are filtered by (all optional). */
export interface TradeFilters extends DayRange {
  symbol?: string;
  strategy?: string;
  exit_reason?: string;
  status?: TradeStatus;
}

export const TRADES_PAGE_SIZE = 100;
export const POSITIONS_REFRESH_MS = 3000;

export const tradingKeys = {
  pnl: ["trading", "pnl"] as const,
  pnlSummary: ["trading", "pnl", "summary"] as const,
  cumulative: (range: DayRange) => ["trading", "pnl", "cumulative", range.from ?? "", range.to ?? ""] as const,
  stats: ["trading", "stats"] as const,
  daily: (range: DayRange) => ["trading", "stats", "daily", range.from ?? "", range.to ?? ""] as const,
  trades: ["trading", "trades"] as const,
  tradeList: (filters: TradeFilters) => ["trading", "trades", "list", filterQuery(filters)] as const,
  tradeSummary: (filters: TradeFilters) => ["trading", "trades", "summary", filterQuery(filters)] as const,
  tradeChoices: (range: DayRange) => ["trading", "trades", "choices", range.from ?? "", range.to ?? ""] as const,
  risk: ["trading", "risk"] as const,
  positions: ["trading", "positions"] as const,
};

/** The filters as query parameters, without the empty ones (so equal filters make equal keys and URLs). */
export function filterQuery(filters: TradeFilters): TradeFilters {
  const query: TradeFilters = {};
  for (const key of ["from", "to", "symbol", "strategy", "exit_reason"] as const) {
    const value = filters[key]?.trim();
    if (value) query[key] = value;
  }
  if (filters.status === "open" || filters.status === "closed") query.status = filters.status;
  return query;
}

// -- date presets ---------------------------------------------------------------------------------------

export type RangePreset = "today" | "7d" | "30d" | "fy" | "last_fy";

export const RANGE_PRESETS: { id: RangePreset; label: string }[] = [
  { id: "today", label: "Today" },
  { id: "7d", label: "7 days" },
  { id: "30d", label: "30 days" },
  { id: "fy", label: "This financial year" },
  { id: "last_fy", label: "Last financial year" },
];

/** A preset's days, counted from the API's today (`asOf`), never the browser's; this FY stops at today. */
export function presetRange(preset: RangePreset, asOf: string): Required<DayRange> {
  switch (preset) {
    case "today":
      return { from: asOf, to: asOf };
    case "7d":
      return { from: addDays(asOf, -6), to: asOf };
    case "30d":
      return { from: addDays(asOf, -29), to: asOf };
    case "fy":
      return { from: financialYear(asOf, 0)[0], to: asOf };
    case "last_fy": {
      const [from, to] = financialYear(asOf, -1);
      return { from, to };
    }
  }
}

/** Which preset, if any, a range is exactly. */
export function presetOf(range: DayRange, asOf: string): RangePreset | null {
  for (const { id } of RANGE_PRESETS) {
    const r = presetRange(id, asOf);
    if (r.from === range.from && r.to === range.to) return id;
  }
  return null;
}

// -- P&L, stats, risk -----------------------------------------------------------------------------------

export function usePnlSummary() {
  return useQuery({ queryKey: tradingKeys.pnlSummary, queryFn: () => call(api.GET("/api/pnl/summary")) });
}

export function useCumulativePnl(range: DayRange, enabled = true) {
  return useQuery({
    queryKey: tradingKeys.cumulative(range),
    queryFn: () => call(api.GET("/api/pnl/cumulative", { params: { query: { from: range.from, to: range.to } } })),
    enabled,
    placeholderData: keepPreviousData,
  });
}

export function useDailyStats(range: DayRange, enabled = true) {
  return useQuery({
    queryKey: tradingKeys.daily(range),
    queryFn: () => call(api.GET("/api/stats/daily", { params: { query: { from: range.from, to: range.to } } })),
    enabled,
    placeholderData: keepPreviousData,
  });
}

export function useRisk() {
  return useQuery({ queryKey: tradingKeys.risk, queryFn: () => call(api.GET("/api/risk")) });
}

/** Set the daily loss limit (rupees, as typed: "5000" or "5000.50"), or clear it with null. */
export function useSetDailyLossLimit() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (limit: string | null) => call(api.PUT("/api/risk", { body: { daily_loss_limit: limit } })),
    onSuccess: (risk) => queryClient.setQueryData(tradingKeys.risk, risk),
  });
}

/** After new fills (a sync, a live fill event, a gap in the stream): every figure built from trades is stale. */
export function invalidateTradingFigures(queryClient: QueryClient): Promise<unknown> {
  return Promise.all(
    [tradingKeys.pnl, tradingKeys.stats, tradingKeys.trades, tradingKeys.risk].map((queryKey) =>
      queryClient.invalidateQueries({ queryKey }),
    ),
  );
}

// -- trades ---------------------------------------------------------------------------------------------

export function useTrades(filters: TradeFilters, enabled = true) {
  const query = filterQuery(filters);
  return useInfiniteQuery({
    queryKey: tradingKeys.tradeList(filters),
    queryFn: ({ pageParam }) =>
      call(
        api.GET("/api/trades", {
          params: { query: { ...query, cursor: pageParam ?? undefined, limit: TRADES_PAGE_SIZE } },
        }),
      ),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    enabled,
    placeholderData: keepPreviousData,
  });
}

/** Totals of the closed trades the filters select (the API ignores `status` here: open trades have no P&L). */
export function useTradesSummary(filters: TradeFilters, enabled = true) {
  const { status: _status, ...rest } = filters;
  return useQuery({
    queryKey: tradingKeys.tradeSummary(rest),
    queryFn: () => call(api.GET("/api/trades/summary", { params: { query: filterQuery(rest) } })),
    enabled,
    placeholderData: keepPreviousData,
  });
}

/** The symbols, strategies and exit reasons present in the user's trades within a range. */
export function useTradeFilterChoices(range: DayRange, enabled = true) {
  return useQuery({
    queryKey: tradingKeys.tradeChoices(range),
    queryFn: () => call(api.GET("/api/trades/filters", { params: { query: { from: range.from, to: range.to } } })),
    enabled,
    placeholderData: keepPreviousData,
  });
}

/** The name the API gives the file (`trades_<from|all>_<to|all>.csv`); used when the header is not exposed. */
export function csvFileName(filters: TradeFilters, contentDisposition: string | null = null): string {
  const quoted = contentDisposition?.match(/filename="?([^";]+)"?/i)?.[1];
  if (quoted) return quoted;
  return `trades_${filters.from || "all"}_${filters.to || "all"}.csv`;
}

/**
 * Download the filtered trades as CSV. A plain `<a href download>` to another origin neither sends the
 * session cookie reliably nor reports failures, so the file is fetched with credentials and handed to the
 * browser as a Blob. Resolves to the file name; rejects with an ApiError (a 401 also reaches the sign-in handler).
 */
export async function downloadTradesCsv(filters: TradeFilters): Promise<string> {
  let response: Response;
  try {
    response = await fetch(apiUrl("/api/trades.csv", { ...filterQuery(filters) }), {
      credentials: "include",
      headers: { Accept: "text/csv" },
    });
  } catch {
    throw new ApiError(0, NETWORK_ERROR, "The API could not be reached. Check your connection and try again.");
  }
  if (!response.ok) {
    const error = await errorFromResponse(response);
    if (response.status === 401) reportUnauthorized(error);
    throw error;
  }
  const blob = await response.blob();
  const name = csvFileName(filters, response.headers.get("Content-Disposition"));
  const href = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = href;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The click starts the download synchronously; the URL can go once this task ends.
  window.setTimeout(() => URL.revokeObjectURL(href), 0);
  return name;
}

/** Pull fills from the broker (all it returns, or one IST day's) and match them into trades. */
export function useSync() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (day: string | null) => call(api.POST("/api/sync", { body: { day } })),
    onSuccess: () => invalidateTradingFigures(queryClient),
  });
}

export function syncResultText(result: SyncResult): string {
  const fills = `${result.fills_new} new ${result.fills_new === 1 ? "fill" : "fills"}`;
  const trades = `${result.trades_closed} ${result.trades_closed === 1 ? "trade" : "trades"} closed`;
  return `${fills}, ${trades}`;
}

// -- positions ------------------------------------------------------------------------------------------

/**
 * Live broker positions, polled while the page is open. TanStack Query pauses the interval while the tab
 * is hidden and refetches when it comes back; a failed poll keeps the last answer, and the next poll retries.
 */
export function usePositions() {
  return useQuery({
    queryKey: tradingKeys.positions,
    queryFn: () => call(api.GET("/api/positions")),
    refetchInterval: POSITIONS_REFRESH_MS,
    refetchIntervalInBackground: false,
    staleTime: 0,
    retry: false,
  });
}
