import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";
import type { AuthStatus } from "../api/auth";
import type { LiveMessage } from "../api/events";
import { ToastProvider } from "../ui/toast";
import Dashboard, { rangeTotals, validateLimit } from "./Dashboard";

const live = vi.hoisted(() => ({ listener: null as null | ((m: LiveMessage) => void) }));
vi.mock("../api/events", () => ({
  useLiveMessages: (listener: (m: LiveMessage) => void) => {
    live.listener = listener;
  },
}));
// The chart library draws on canvas, which jsdom lacks; the chart has its own test.
vi.mock("../ui/charts/CumulativePnlChart", () => ({
  default: ({ points }: { points: unknown[] }) => <div data-testid="chart-stub">{points.length} points</div>,
}));

const AS_OF = "2026-11-20";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

interface Api {
  summary: Record<string, unknown>;
  risk: Record<string, unknown>;
  agents: unknown[];
  stats: unknown[];
  cumulative: unknown[];
  putRisk?: (body: { daily_loss_limit: unknown }) => Response;
}

function agent(id: number, state: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    strategy: "short_strangle",
    state,
    reason: null,
    started_at: "2026-11-20T03:50:00Z",
    stopped_at: null,
    params: {},
    runtime: "api-1",
    heartbeat_at: null,
    realised_pnl_today: "0",
    ...extra,
  };
}

function setup(overrides: Partial<Api> = {}) {
  const state: Api = {
    summary: { as_of: AS_OF, day: "1234.5", week: "-80", month: "0", year: "10000", all_time: "25000.75" },
    risk: { daily_loss_limit: null, daily_loss_used: "0", trading_blocked: false },
    agents: [],
    stats: [],
    cumulative: [],
    ...overrides,
  };
  const requests: { method: string; url: URL; body: unknown }[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    const body = request.method === "GET" ? null : await request.clone().json();
    requests.push({ method: request.method, url, body });
    switch (`${request.method} ${url.pathname}`) {
      case "GET /api/pnl/summary":
        return json(state.summary);
      case "GET /api/risk":
        return json(state.risk);
      case "PUT /api/risk":
        return state.putRisk ? state.putRisk(body as { daily_loss_limit: unknown }) : json(state.risk);
      case "GET /api/agents":
        return json(state.agents);
      case "GET /api/stats/daily":
        return json(state.stats);
      case "GET /api/pnl/cumulative":
        return json(state.cumulative);
      default:
        return json({ error: "NotFound", detail: "no such route" }, 404);
    }
  });
  vi.stubGlobal("fetch", fetchMock);
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={["/"]}>
        <ToastProvider>
          <Dashboard status={{ authenticated: true } as AuthStatus} />
        </ToastProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return { state, requests, user: userEvent.setup() };
}

afterEach(() => {
  vi.unstubAllGlobals();
  live.listener = null;
});

describe("Dashboard", () => {
  it("shows realised P&L for each period, signed and formatted", async () => {
    setup();
    expect(await screen.findByTestId("pnl-day")).toHaveTextContent("+₹1,234.50");
    expect(screen.getByTestId("pnl-week")).toHaveTextContent("−₹80.00");
    expect(screen.getByTestId("pnl-week")).toHaveClass("neg");
    expect(screen.getByTestId("pnl-month")).toHaveTextContent("₹0.00");
    expect(screen.getByTestId("pnl-year")).toHaveTextContent("+₹10,000.00");
    expect(screen.getByTestId("pnl-all_time")).toHaveTextContent("+₹25,000.75");
  });

  it("counts presets from the API's today and draws the chosen range in the calendar and the chart", async () => {
    const { requests, user } = setup({
      stats: [
        { day: "2025-06-02", trades: 4, wins: 3, losses: 1, win_rate: "0.75", gross_profit: "1500", gross_loss: "-266", net: "1234", max_drawdown: "100" },
        { day: "2025-06-03", trades: 2, wins: 0, losses: 2, win_rate: "0", gross_profit: "0", gross_loss: "-300.5", net: "-300.5", max_drawdown: "300.5" },
      ],
      cumulative: [{ day: "2025-06-02", net: "1234", cumulative: "1234" }],
    });
    // The default range is the last 30 days up to the API's today (not the browser's).
    await waitFor(() =>
      expect(requests.some((r) => r.url.pathname === "/api/stats/daily" && r.url.search === "?from=2026-10-22&to=2026-11-20")).toBe(true),
    );
    await user.click(screen.getByRole("tab", { name: "Last financial year" }));
    expect(screen.getByRole("tab", { name: "Last financial year" })).toHaveAttribute("aria-selected", "true");
    await waitFor(() => {
      const wanted = "?from=2025-04-01&to=2026-03-31";
      expect(requests.some((r) => r.url.pathname === "/api/stats/daily" && r.url.search === wanted)).toBe(true);
      expect(requests.some((r) => r.url.pathname === "/api/pnl/cumulative" && r.url.search === wanted)).toBe(true);
    });
    const day = await screen.findByRole("link", { name: "2025-06-02: +₹1,234.00, 4 trades" });
    expect(day).toHaveAttribute("href", "/trades?from=2025-06-02&to=2025-06-02");
    expect(day).toHaveClass("hm-pos-4");
    expect(screen.getByRole("link", { name: "2025-06-03: −₹300.50, 2 trades" })).toHaveClass("hm-neg-1");
    expect(screen.getByRole("img", { name: "2025-06-04: no trades" })).toBeInTheDocument();
    expect(screen.getByTestId("range-trades")).toHaveTextContent("6");
    expect(screen.getByTestId("range-win-rate")).toHaveTextContent("50.0%");
    expect(screen.getByTestId("range-net")).toHaveTextContent("+₹933.50");
    expect(await screen.findByTestId("chart-stub")).toHaveTextContent("1 points");
  });

  it("says when no daily loss limit is set, and refuses a limit of zero without asking the API", async () => {
    const { requests, user } = setup();
    expect(await screen.findByTestId("risk-none")).toHaveTextContent("No daily loss limit set");
    const input = screen.getByLabelText("New limit (₹)");
    await user.type(input, "0");
    await user.click(screen.getByRole("button", { name: "Save limit" }));
    expect(screen.getByText("The limit must be more than ₹0.")).toBeInTheDocument();
    expect(input).toHaveAttribute("aria-invalid", "true");
    expect(requests.some((r) => r.method === "PUT")).toBe(false);
  });

  it("saves a limit and shows how much of it today's losses used", async () => {
    const { requests, user, state } = setup({ risk: { daily_loss_limit: null, daily_loss_used: "1200", trading_blocked: false } });
    state.putRisk = (body) => json({ daily_loss_limit: body.daily_loss_limit, daily_loss_used: "1200", trading_blocked: false });
    await user.type(await screen.findByLabelText("New limit (₹)"), "5,000");
    await user.click(screen.getByRole("button", { name: "Save limit" }));
    expect(await screen.findByTestId("risk-used")).toHaveTextContent("₹1,200.00 of ₹5,000.00 used (24.0%)");
    expect(requests.find((r) => r.method === "PUT")?.body).toEqual({ daily_loss_limit: "5000" });
    expect(screen.getByRole("progressbar", { name: "Daily loss limit used" })).toHaveAttribute("aria-valuenow", "24");
  });

  it("shows the API's field error next to the limit and keeps what was typed", async () => {
    const { user, state } = setup();
    state.putRisk = () =>
      json(
        {
          error: "ValidationError",
          detail: "The request is not valid: check daily_loss_limit.",
          errors: [{ loc: ["body", "daily_loss_limit"], msg: "Decimal input should have no more than 2 decimal places", type: "decimal_max_places" }],
        },
        422,
      );
    const input = await screen.findByLabelText("New limit (₹)");
    await user.type(input, "750.25");
    await user.click(screen.getByRole("button", { name: "Save limit" }));
    expect(await screen.findByText("Decimal input should have no more than 2 decimal places")).toHaveClass("field-error");
    expect(input).toHaveValue("750.25");
  });

  it("shows when trading is blocked", async () => {
    setup({ risk: { daily_loss_limit: "1000", daily_loss_used: "1250", trading_blocked: true } });
    expect(await screen.findByTestId("risk-blocked")).toHaveTextContent("Trading is blocked for today");
    expect(screen.getByRole("progressbar")).toHaveClass("over");
  });

  it("lists only live agents with their state, reason and today's P&L", async () => {
    setup({
      agents: [
        agent(2, "paused", { reason: "broker_token_expired", realised_pnl_today: "-150" }),
        agent(1, "stopped", { strategy: "sma_crossover" }),
      ],
    });
    const rows = await screen.findAllByTestId("running-agent");
    expect(rows).toHaveLength(1);
    const row = within(rows[0]!);
    expect(row.getByText("short strangle")).toBeInTheDocument();
    expect(row.getByText("paused")).toHaveClass("badge-paused");
    expect(row.getByText("broker_token_expired")).toBeInTheDocument();
    expect(rows[0]).toHaveTextContent("−₹150.00");
  });

  it("offers the live trader when no agent runs", async () => {
    setup({ agents: [agent(1, "stopped")] });
    expect(await screen.findByRole("link", { name: "Start one on the Live trader page" })).toHaveAttribute("href", "/live");
  });

  it("refetches P&L when a fill arrives on the live stream", async () => {
    const { state } = setup();
    expect(await screen.findByTestId("pnl-day")).toHaveTextContent("+₹1,234.50");
    state.summary = { ...state.summary, day: "1500" };
    live.listener?.({
      kind: "event",
      id: "1-0",
      data: { id: 9, agent_id: 2, at: "2026-11-20T05:00:00Z", kind: "fill", level: "info", message: "filled", data: {} },
    } as LiveMessage);
    await waitFor(() => expect(screen.getByTestId("pnl-day")).toHaveTextContent("+₹1,500.00"));
  });

  it("ignores log events for refreshing", async () => {
    const { requests } = setup();
    await screen.findByTestId("pnl-day");
    const before = requests.filter((r) => r.url.pathname === "/api/pnl/summary").length;
    live.listener?.({
      kind: "event",
      id: "1-0",
      data: { id: 9, agent_id: 2, at: "2026-11-20T05:00:00Z", kind: "log", level: "info", message: "tick", data: {} },
    } as LiveMessage);
    await act(() => new Promise((r) => setTimeout(r, 400)));
    expect(requests.filter((r) => r.url.pathname === "/api/pnl/summary").length).toBe(before);
  });
});

describe("validateLimit", () => {
  it.each([
    ["5000", { value: "5000" }],
    ["1,00,000.50", { value: "100000.50" }],
    ["", { error: "Enter the most you are willing to lose in a day." }],
    ["-5", { error: "Enter an amount in rupees, e.g. 5000 or 5000.50." }],
    ["12.345", { error: "Enter an amount in rupees, e.g. 5000 or 5000.50." }],
    ["0.00", { error: "The limit must be more than ₹0." }],
    ["1000000001", { error: "The limit can be at most ₹1,00,00,00,000." }],
  ])("%s", (text, expected) => {
    expect(validateLimit(text)).toEqual(expected);
  });
});

describe("rangeTotals", () => {
  it("adds money without floating-point dust and finds the best and worst days", () => {
    const day = (d: string, net: string, trades = 1, wins = 1) => ({
      day: d, trades, wins, losses: trades - wins, win_rate: "1", gross_profit: "0", gross_loss: "0", net, max_drawdown: "0",
    });
    const totals = rangeTotals([day("2026-01-01", "0.1"), day("2026-01-02", "0.2"), day("2026-01-03", "-5", 2, 0)]);
    expect(totals.net).toBe(-4.7);
    expect(totals.trades).toBe(4);
    expect(totals.bestDay?.day).toBe("2026-01-02");
    expect(totals.worstDay?.day).toBe("2026-01-03");
  });
});
