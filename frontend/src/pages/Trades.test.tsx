import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, useLocation } from "react-router";
import type { AuthStatus } from "../api/auth";
import { ToastProvider } from "../ui/toast";
import Trades, { filtersFromParams } from "./Trades";

const AS_OF = "2026-11-20";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function trade(id: number, extra: Record<string, unknown> = {}) {
  return {
    id,
    exchange: "NSE",
    tradingsymbol: "INFY",
    product: "MIS",
    direction: "LONG",
    status: "closed",
    quantity: 10,
    entry_price: "1500.00",
    entry_at: "2026-11-20T04:00:00Z",
    exit_price: "1510.50",
    exit_at: "2026-11-20T05:00:00Z",
    realised_pnl: "105.00",
    exit_reason: "target",
    strategy: "sma_crossover",
    day: "2026-11-20",
    ...extra,
  };
}

type Handler = (url: URL, body: unknown) => Response | undefined;

function setup(path: string, handler: Handler = () => undefined) {
  const requests: { method: string; url: URL; body: unknown; credentials: RequestCredentials }[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    const body = request.method === "GET" ? null : await request.clone().json();
    requests.push({ method: request.method, url, body, credentials: init?.credentials ?? request.credentials });
    const answer = handler(url, body);
    if (answer !== undefined) return answer;
    switch (`${request.method} ${url.pathname}`) {
      case "GET /api/pnl/summary":
        return json({ as_of: AS_OF, day: "0", week: "0", month: "0", year: "0", all_time: "0" });
      case "GET /api/trades/filters":
        return json({ symbols: ["INFY", "TCS"], strategies: ["short_strangle", "sma_crossover"], exit_reasons: ["stop_loss", "target"] });
      case "GET /api/trades/summary":
        return json({ count: 12, wins: 7, losses: 5, gross_profit: "4200.00", gross_loss: "-1800.50", net: "2399.50", win_rate: "0.5833" });
      case "GET /api/trades":
        return json({ items: [trade(1)], next_cursor: null });
      default:
        return json({ error: "NotFound", detail: "no such route" }, 404);
    }
  });
  vi.stubGlobal("fetch", fetchMock);
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const location = { current: "" };
  function Where() {
    const l = useLocation();
    location.current = l.pathname + l.search;
    return null;
  }
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <ToastProvider>
          <Where />
          <Trades status={{ authenticated: true } as AuthStatus} />
        </ToastProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  const calls = (pathname: string) => requests.filter((r) => r.url.pathname === pathname);
  return { requests, calls, location, user: userEvent.setup() };
}

afterEach(() => vi.unstubAllGlobals());

describe("Trades", () => {
  it("sends the filters in the URL to the list and the summary, and shows the summary", async () => {
    const { calls } = setup("/trades?from=2026-11-01&to=2026-11-20&symbol=INFY&status=closed&strategy=sma_crossover");
    expect(await screen.findByTestId("summary-count")).toHaveTextContent("12");
    expect(screen.getByTestId("summary-net")).toHaveTextContent("+₹2,399.50");
    expect(screen.getByTestId("summary-win-rate")).toHaveTextContent("58.3%");
    expect(screen.getByTestId("summary-loss")).toHaveTextContent("₹1,800.50");
    const list = calls("/api/trades")[0]!.url.searchParams;
    expect(Object.fromEntries(list)).toEqual({
      from: "2026-11-01",
      to: "2026-11-20",
      symbol: "INFY",
      strategy: "sma_crossover",
      status: "closed",
      limit: "100",
    });
    // The summary takes the same filters except status (it totals closed trades).
    expect(Object.fromEntries(calls("/api/trades/summary")[0]!.url.searchParams)).toEqual({
      from: "2026-11-01",
      to: "2026-11-20",
      symbol: "INFY",
      strategy: "sma_crossover",
    });
    expect(screen.getByLabelText("Symbol")).toHaveValue("INFY");
    expect(screen.getByLabelText("Status")).toHaveValue("closed");
    const row = within(await screen.findByTestId("trades-table")).getAllByRole("row")[1]!;
    expect(row).toHaveTextContent("INFY");
    expect(row).toHaveTextContent("+₹105.00");
  });

  it("keeps a changed filter in the URL and asks the API with it", async () => {
    const { calls, location, user } = setup("/trades");
    await screen.findByTestId("trades-table");
    await user.selectOptions(await screen.findByLabelText("Exit reason"), "stop_loss");
    expect(location.current).toBe("/trades?exit_reason=stop_loss");
    await waitFor(() =>
      expect(calls("/api/trades").some((r) => r.url.searchParams.get("exit_reason") === "stop_loss")).toBe(true),
    );
    expect(screen.getByRole("option", { name: "stop loss" })).toBeInTheDocument();
  });

  it("sets dates from a preset counted from the API's today", async () => {
    const { location, user } = setup("/trades");
    await user.click(await screen.findByRole("button", { name: "Last financial year" }));
    expect(location.current).toBe("/trades?from=2025-04-01&to=2026-03-31");
    expect(screen.getByRole("button", { name: "Last financial year" })).toHaveAttribute("aria-pressed", "true");
    await user.click(screen.getByRole("button", { name: "7 days" }));
    expect(location.current).toBe("/trades?from=2026-11-14&to=2026-11-20");
  });

  it("follows the cursor for more rows", async () => {
    const { calls, user } = setup("/trades", (url) => {
      if (url.pathname !== "/api/trades") return undefined;
      return url.searchParams.get("cursor") === "c1"
        ? json({ items: [trade(2, { tradingsymbol: "TCS" })], next_cursor: null })
        : json({ items: [trade(3)], next_cursor: "c1" });
    });
    await user.click(await screen.findByRole("button", { name: "Load more" }));
    expect(await within(screen.getByTestId("trades-table")).findByText("TCS")).toBeInTheDocument();
    expect(screen.getByTestId("trades-shown")).toHaveTextContent("Showing 2 trades");
    expect(screen.queryByRole("button", { name: "Load more" })).not.toBeInTheDocument();
    expect(calls("/api/trades").map((r) => r.url.searchParams.get("cursor"))).toEqual([null, "c1"]);
  });

  it("refuses a range that ends before it starts, without asking for trades", async () => {
    const { calls } = setup("/trades?from=2026-11-20&to=2026-11-01");
    expect(await screen.findByText("The end date is before the start date.")).toBeInTheDocument();
    expect(screen.getByLabelText("To")).toHaveAttribute("aria-invalid", "true");
    expect(calls("/api/trades")).toHaveLength(0);
    expect(calls("/api/trades/summary")).toHaveLength(0);
  });

  it("says when no trades match and offers to clear the filters", async () => {
    const { location, user } = setup("/trades?symbol=TCS", (url) =>
      url.pathname === "/api/trades" ? json({ items: [], next_cursor: null }) : undefined,
    );
    expect(await screen.findByText(/No trades match these filters/)).toBeInTheDocument();
    await user.click(screen.getAllByRole("button", { name: "Clear filters" })[0]!);
    expect(location.current).toBe("/trades");
  });

  it("syncs from the broker, reports what came in and reloads the trades", async () => {
    const { calls, user } = setup("/trades", (url) =>
      url.pathname === "/api/sync" ? json({ fills_new: 3, trades_closed: 2 }) : undefined,
    );
    await screen.findByTestId("trades-table");
    const before = calls("/api/trades").length;
    await user.click(screen.getByRole("button", { name: "Sync from broker" }));
    expect(await screen.findByTestId("sync-result")).toHaveTextContent("3 new fills, 2 trades closed");
    expect(calls("/api/sync")[0]!.body).toEqual({ day: null });
    expect(await screen.findByText("Synced: 3 new fills, 2 trades closed.")).toBeInTheDocument();
    await waitFor(() => expect(calls("/api/trades").length).toBeGreaterThan(before));
    expect(calls("/api/trades/summary").length).toBeGreaterThan(1);
  });

  it("asks for the day before syncing another day, and sends the one picked", async () => {
    const { calls, user } = setup("/trades", (url) =>
      url.pathname === "/api/sync" ? json({ fills_new: 1, trades_closed: 0 }) : undefined,
    );
    await user.click(await screen.findByLabelText("Another day"));
    await user.click(screen.getByRole("button", { name: "Sync from broker" }));
    expect(screen.getByText("Pick the day to sync.")).toBeInTheDocument();
    expect(calls("/api/sync")).toHaveLength(0);
    await user.type(screen.getByLabelText("Day"), "2026-11-18");
    await user.click(screen.getByRole("button", { name: "Sync from broker" }));
    expect(await screen.findByTestId("sync-result")).toHaveTextContent("1 new fill, 0 trades closed");
    expect(calls("/api/sync")[0]!.body).toEqual({ day: "2026-11-18" });
  });

  it("shows a broker failure during sync inline with a retry", async () => {
    let failing = true;
    const { calls, user } = setup("/trades", (url) => {
      if (url.pathname !== "/api/sync") return undefined;
      return failing
        ? json({ error: "BrokerUnavailable", detail: "The broker did not answer in time." }, 504)
        : json({ fills_new: 0, trades_closed: 0 });
    });
    await user.click(await screen.findByRole("button", { name: "Sync from broker" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("The sync failed: The broker did not answer in time.");
    failing = false;
    await user.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByTestId("sync-result")).toHaveTextContent("0 new fills, 0 trades closed");
    expect(calls("/api/sync")).toHaveLength(2);
  });

  it("downloads the filtered CSV with the session cookie, and reports a failure in a toast", async () => {
    let status = 200;
    const { calls, user } = setup("/trades?symbol=INFY&from=2026-11-01", (url) =>
      url.pathname === "/api/trades.csv"
        ? status === 200
          ? new Response("id,tradingsymbol\n1,INFY\n", { headers: { "Content-Type": "text/csv" } })
          : json({ error: "BadRequest", detail: "The range is too long." }, status)
        : undefined,
    );
    const createObjectURL = vi.fn(() => "blob:trades");
    vi.stubGlobal("URL", Object.assign(URL, { createObjectURL, revokeObjectURL: vi.fn() }));
    const click = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      expect(this.download).toBe("trades_2026-11-01_all.csv");
      expect(this.href).toBe("blob:trades");
    });
    await user.click(await screen.findByRole("button", { name: "Export CSV" }));
    expect(await screen.findByText("Downloaded trades_2026-11-01_all.csv.")).toBeInTheDocument();
    expect(click).toHaveBeenCalledTimes(1);
    const csv = calls("/api/trades.csv")[0]!;
    expect(Object.fromEntries(csv.url.searchParams)).toEqual({ from: "2026-11-01", symbol: "INFY" });
    expect(csv.credentials).toBe("include");

    status = 400;
    await user.click(screen.getByRole("button", { name: "Export CSV" }));
    expect(await screen.findByText("The CSV export failed: The range is too long.")).toBeInTheDocument();
    expect(click).toHaveBeenCalledTimes(1);
    click.mockRestore();
  });

  it("shows an error with a retry when the list fails, keeping the filters", async () => {
    let fail = true;
    const { user } = setup("/trades?symbol=INFY", (url) =>
      url.pathname === "/api/trades" && fail
        ? json({ error: "ServiceUnavailable", detail: "The service is briefly unavailable." }, 503)
        : undefined,
    );
    expect(await screen.findByText("Could not load trades.")).toBeInTheDocument();
    fail = false;
    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(await screen.findByTestId("trades-table")).toBeInTheDocument();
    expect(screen.getByLabelText("Symbol")).toHaveValue("INFY");
  });
});

describe("filtersFromParams", () => {
  it("drops malformed dates, unknown statuses and empty values", () => {
    expect(filtersFromParams(new URLSearchParams("from=20-11-2026&to=2026-11-20&status=maybe&symbol=&strategy=x"))).toEqual({
      to: "2026-11-20",
      strategy: "x",
    });
  });
});
