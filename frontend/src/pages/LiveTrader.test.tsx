import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, Route, Routes, useLocation } from "react-router";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AuthStatus } from "../api/auth";
import type { Agent, AgentEvent } from "../api/agents";
import { EventStreamProvider } from "../api/events";
import { STRATEGIES } from "../ui/SchemaForm.fixtures";
import { fakeApi, jsonResponse, type Call } from "../test-support";
import { ToastProvider } from "../ui/toast";
import LiveTrader from "./LiveTrader";
import { ApiClock, orderAgents, reasonText } from "./LiveTraderAgents";
import { mergeEvents } from "./LiveTraderConsole";

const STATUS = { authenticated: true, user_name: "Asha", broker_id: "AB1234" } as AuthStatus;
const NOW = Date.now();
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();

function agent(over: Partial<Agent>): Agent {
  return {
    id: 1,
    strategy: "short_strangle",
    state: "running",
    reason: null,
    started_at: iso(3_600_000),
    stopped_at: null,
    params: { ...STRATEGIES[0]!.defaults },
    runtime: "rt-1",
    heartbeat_at: iso(2_000),
    realised_pnl_today: "1250.50",
    ...over,
  };
}

function event(over: Partial<AgentEvent>): AgentEvent {
  return { id: 1, agent_id: 7, at: iso(60_000), kind: "log", level: "info", message: "hello", data: {}, ...over };
}

const json = jsonResponse;

let calls: Call[];
let agents: Agent[];
let savedParams: Record<string, Record<string, unknown>>;
let eventsOf: Record<number, AgentEvent[]>;
let startAnswer: (() => Response) | null;
let sse: ReadableStreamDefaultController<Uint8Array> | null;

function push(kind: "agent" | "event" | "gap", data: unknown, id: string) {
  act(() => {
    sse?.enqueue(new TextEncoder().encode(`event: ${kind}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`));
  });
}

beforeEach(() => {
  sse = null;
  startAnswer = null;
  agents = [
    agent({ id: 5, strategy: "sma_crossover", state: "stopped", reason: "stopped by user", stopped_at: iso(7_200_000), started_at: iso(9_000_000), realised_pnl_today: "-80" }),
    agent({ id: 7, state: "running" }),
  ];
  savedParams = {
    short_strangle: { ...STRATEGIES[0]!.defaults, call_lots: 2, put_lots: 3, delta_low: 0.3 },
    sma_crossover: { ...STRATEGIES[1]!.defaults },
  };
  eventsOf = {
    7: [event({ id: 11, agent_id: 7, message: "Running on runtime rt-1.", kind: "state" }), event({ id: 10, agent_id: 7, message: "Started NIFTY short strangle.", kind: "state", at: iso(3_600_000) })],
    5: [event({ id: 4, agent_id: 5, message: "Stopped.", kind: "state" })],
  };
  calls = fakeApi(async ({ method, path, body }) => {
    if (path === "/api/events") {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          sse = controller;
        },
      });
      return new Response(stream, { headers: { "Content-Type": "text/event-stream" } });
    }
    if (path === "/api/strategies") return json(STRATEGIES);
    if (path === "/api/agents" && method === "GET") return json(agents);
    let m = /^\/api\/strategies\/(\w+)\/params$/.exec(path);
    if (m && method === "GET") return json(savedParams[m[1]!]);
    if (path === "/api/agents" && method === "POST") {
      if (startAnswer) return startAnswer();
      const req = body as { strategy: string; params: Record<string, unknown> };
      const started = agent({ id: 9, strategy: req.strategy, state: "starting", params: req.params, heartbeat_at: null, realised_pnl_today: 0 });
      return json(started, 201);
    }
    m = /^\/api\/agents\/(\d+)\/events$/.exec(path);
    if (m) return json({ items: eventsOf[Number(m[1])] ?? [], next: null });
    m = /^\/api\/agents\/(\d+)\/stop$/.exec(path);
    if (m) {
      const found = agents.find((a) => a.id === Number(m![1]))!;
      return json({ ...found, state: "stopping", reason: "stopped by user" });
    }
    if (path === "/api/agents/stop-all") return json({ stopped: 1, orders_cancelled: 2, positions_closed: 2 });
    return json({ error: "NotFound", detail: `no route ${method} ${path}` }, 404);
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

function Where() {
  const location = useLocation();
  return <p data-testid="where">{location.pathname + location.search}</p>;
}

function renderPage() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <ToastProvider>
        <MemoryRouter initialEntries={["/live"]}>
          <EventStreamProvider enabled>
            <Routes>
              <Route path="/live" element={<LiveTrader status={STATUS} />} />
              <Route path="*" element={<Where />} />
            </Routes>
          </EventStreamProvider>
        </MemoryRouter>
      </ToastProvider>
    </QueryClientProvider>,
  );
}

const cards = () => screen.getAllByTestId("agent-card");
const lines = () => screen.getAllByTestId("event-line").map((l) => l.textContent ?? "");

async function ready() {
  await waitFor(() => expect(cards()).toHaveLength(2));
  await waitFor(() => expect(sse).not.toBeNull());
}

describe("agent and event rules", () => {
  it("orders live agents first, then the most recently stopped", () => {
    const list = [
      agent({ id: 1, state: "stopped", stopped_at: iso(50_000) }),
      agent({ id: 2, state: "failed", stopped_at: iso(10_000) }),
      agent({ id: 3, state: "paused" }),
      agent({ id: 4, state: "running" }),
    ];
    expect(orderAgents(list).map((a) => a.id)).toEqual([4, 3, 2, 1]);
    expect(orderAgents(list, 1).map((a) => a.id)).toEqual([4, 3, 2]);
  });

  it("merges events once by id, oldest first, capped to the newest", () => {
    const a = [event({ id: 3 }), event({ id: 1 })];
    const b = [event({ id: 3, message: "again" }), event({ id: 2, agent_id: 8 }), event({ id: 4 })];
    expect(mergeEvents([a, b]).map((e) => e.id)).toEqual([1, 2, 3, 4]);
    expect(mergeEvents([a, b], 7).map((e) => e.id)).toEqual([1, 3, 4]);
    expect(mergeEvents([a, b], null, 2).map((e) => e.id)).toEqual([3, 4]);
  });

  it("learns the API's clock from its own times (a simulated clock hours away)", () => {
    const clock = new ApiClock();
    expect(clock.now(1_000)).toBe(1_000);
    const received = Date.UTC(2025, 0, 1, 12, 0, 0);
    clock.observe("2025-01-01T04:00:00Z", received); // the API is 8 h behind this browser
    expect(clock.now(received + 5_000)).toBe(Date.UTC(2025, 0, 1, 4, 0, 5));
    clock.observe("2025-01-01T03:59:00Z", received + 1_000); // an older heartbeat does not pull it back
    expect(clock.now(received + 5_000)).toBe(Date.UTC(2025, 0, 1, 4, 0, 5));
  });

  it("turns the API's reasons into sentences", () => {
    expect(reasonText("broker_token_expired")).toMatch(/access token has expired/);
    expect(reasonText("daily_loss_limit_reached")).toMatch(/Daily loss limit reached/);
    expect(reasonText("kill switch")).toMatch(/kill switch/);
    expect(reasonText("order rejected: margin")).toBe("The broker rejected an order: margin");
    expect(reasonText(null)).toBeNull();
  });
});

describe("LiveTrader", () => {
  it("shows this user's agents, live first, with state, reason, runtime and today's P&L", async () => {
    renderPage();
    await ready();
    const [first, second] = cards();
    expect(first).toHaveAttribute("data-agent-id", "7");
    expect(first).toHaveAttribute("data-state", "running");
    expect(within(first!).getByText("Running")).toHaveClass("badge", "badge-running");
    expect(within(first!).getByTestId("agent-pnl")).toHaveTextContent("+₹1,250.50");
    expect(within(first!).getByTestId("agent-pnl")).toHaveClass("pos");
    expect(within(first!).getByText(/^1h 0\dm$/)).toBeInTheDocument();
    expect(within(first!).getByTestId("stop-agent")).toBeEnabled();

    expect(second).toHaveAttribute("data-state", "stopped");
    expect(within(second!).getByText("Stopped by you.")).toBeInTheDocument();
    expect(within(second!).getByTestId("agent-pnl")).toHaveClass("neg");
    expect(within(second!).getByText("30m 00s")).toBeInTheDocument(); // started → stopped
    expect(within(second!).queryByTestId("stop-agent")).toBeNull();
  });

  it("checks lots against the schema before sending, then starts with the saved params merged with the lots", async () => {
    const user = userEvent.setup();
    agents = [];
    renderPage();
    await screen.findByText("No agents yet. Pick a strategy and start one.");
    const callLots = await screen.findByRole("spinbutton", { name: "Call lots" });
    await waitFor(() => expect(callLots).toHaveValue(2)); // the saved value, not the default
    expect(screen.getByRole("combobox", { name: "Strategy" })).toHaveAccessibleDescription(/Sells a NIFTY weekly OTM call/);
    expect(screen.getByTestId("units-call_lots")).toHaveTextContent("= 150 units (lot size 75)");

    await user.clear(callLots);
    await user.type(callLots, "0");
    const putLots = screen.getByRole("spinbutton", { name: "Put lots" });
    await user.clear(putLots);
    await user.type(putLots, "51");
    await user.click(screen.getByTestId("start-agent"));
    expect(screen.getByText("At least 1 lot")).toBeInTheDocument();
    expect(screen.getByText("At most 50 lots")).toBeInTheDocument();
    expect(callLots).toHaveFocus();
    expect(calls.some((c) => c.method === "POST")).toBe(false);

    await user.clear(callLots);
    await user.type(callLots, "4");
    await user.clear(putLots);
    await user.type(putLots, "1");
    expect(screen.getByTestId("units-call_lots")).toHaveTextContent("= 300 units (lot size 75)");
    await user.click(screen.getByTestId("start-agent"));

    await waitFor(() => expect(cards()).toHaveLength(1));
    const post = calls.find((c) => c.method === "POST" && c.path === "/api/agents")!;
    expect(post.body).toEqual({
      strategy: "short_strangle",
      params: { ...savedParams["short_strangle"], call_lots: 4, put_lots: 1 },
    });
    expect(cards()[0]).toHaveAttribute("data-state", "starting");
    expect(await screen.findByText("Started NIFTY short strangle (#9).")).toBeInTheDocument();
    expect(screen.getByTestId("start-agent")).toBeDisabled(); // that strategy now runs
  });

  it("shows the API's reason when starting is refused, and lots errors next to the lots", async () => {
    const user = userEvent.setup();
    agents = [];
    startAnswer = () =>
      json({ error: "BrokerNotConnected", detail: "Your broker access token has expired (Kite ends them at 06:00 IST); sign in again first." }, 409);
    renderPage();
    await user.selectOptions(await screen.findByRole("combobox", { name: "Strategy" }), "sma_crossover");
    const lots = await screen.findByRole("spinbutton", { name: "Lots" });
    expect(screen.getByTestId("units-lots")).toHaveTextContent("= 1 units (lot size 1)");
    await user.click(screen.getByTestId("start-agent"));
    expect(await screen.findByRole("alert")).toHaveTextContent("Your broker access token has expired");
    expect(lots).toHaveValue(1);

    startAnswer = () =>
      json({ error: "ValidationError", detail: "bad", errors: [{ loc: ["body", "lots"], msg: "at most 10 lots", type: "less_than_equal" }] }, 422);
    await user.click(screen.getByTestId("start-agent"));
    expect(await screen.findByText("at most 10 lots")).toBeInTheDocument();
    expect(lots).toHaveAttribute("aria-invalid", "true");
  });

  it("updates cards from the live stream and offers Reconnect when the broker session ended", async () => {
    const user = userEvent.setup();
    renderPage();
    await ready();
    expect(screen.queryByTestId("agents-paused-banner")).toBeNull();
    push("agent", { ...agents[1], state: "paused", reason: "broker_token_expired", realised_pnl_today: "-300" }, "1-0");
    await waitFor(() => expect(cards()[0]).toHaveAttribute("data-state", "paused"));
    expect(within(cards()[0]!).getByTestId("agent-pnl")).toHaveTextContent("−₹300.00");
    expect(within(cards()[0]!).getByTestId("agent-reason")).toHaveTextContent(/access token has expired/);
    const banner = screen.getByTestId("agents-paused-banner");
    expect(banner).toHaveTextContent(/paused because your Kite access token has expired/);

    await user.click(within(banner).getByRole("button", { name: "Reconnect" }));
    expect(screen.getByTestId("where")).toHaveTextContent("/connect?reason=broker_expired&next=%2Flive");
    expect(sessionStorage.getItem("tradedesk.next")).toBe("/live");
  });

  it("fills the console from the backfill, adds live events once, and reads back after a gap", async () => {
    renderPage();
    await ready();
    const console_ = screen.getByTestId("event-console");
    expect(console_).toHaveAttribute("role", "log");
    expect(console_).toHaveAttribute("aria-live", "polite");
    // Running agent #7 and the newest agent are read back; the stopped #5 is older than #7.
    await waitFor(() => expect(lines()).toHaveLength(2));
    expect(lines()[0]).toMatch(/Started NIFTY short strangle\./);

    push("event", event({ id: 11, agent_id: 7, message: "Running on runtime rt-1.", kind: "state" }), "2-0");
    push("event", event({ id: 12, agent_id: 7, at: iso(0), kind: "order", level: "warning", message: "CE1 rejected" }), "3-0");
    await waitFor(() => expect(lines()).toHaveLength(3));
    expect(lines()[2]).toMatch(/#7.*order.*warning.*CE1 rejected/);
    expect(screen.getAllByTestId("event-line")[2]).toHaveClass("level-warning");

    const before = calls.filter((c) => c.path === "/api/agents/7/events").length;
    eventsOf[7] = [event({ id: 13, agent_id: 7, message: "Filled CE1", kind: "fill" }), ...eventsOf[7]!];
    push("gap", { last_id: "3-0", oldest_id: "5-0" }, "6-0");
    await waitFor(() => expect(calls.filter((c) => c.path === "/api/agents/7/events").length).toBe(before + 1));
    await waitFor(() => expect(lines()).toHaveLength(4));
    expect(lines()[3]).toMatch(/Filled CE1/);
  });

  it("stops one agent from its card", async () => {
    const user = userEvent.setup();
    renderPage();
    await ready();
    await user.click(within(cards()[0]!).getByTestId("stop-agent"));
    await waitFor(() => expect(cards()[0]).toHaveAttribute("data-state", "stopping"));
    expect(calls.filter((c) => c.method === "POST").map((c) => c.path)).toEqual(["/api/agents/7/stop"]);
    expect(within(cards()[0]!).getByTestId("stop-agent")).toBeDisabled();
    push("agent", { ...agents[1], state: "stopped", stopped_at: iso(0), reason: "stopped by user" }, "1-0");
    const seven = () => screen.getAllByTestId("agent-card").find((c) => c.dataset["agentId"] === "7");
    await waitFor(() => expect(seven()).toHaveAttribute("data-state", "stopped"));
    expect(within(seven()!).queryByTestId("stop-agent")).toBeNull();
  });

  it("never lets a late 'stopping' answer undo a 'stopped' the stream already told", async () => {
    const user = userEvent.setup();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const plain = globalThis.fetch;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
        if (input instanceof Request && input.url.endsWith("/api/agents/7/stop")) await gate;
        return plain(input, init);
      }),
    );
    renderPage();
    await ready();
    await user.click(within(cards()[0]!).getByTestId("stop-agent"));
    push("agent", { ...agents[1], state: "stopped", stopped_at: iso(0), reason: "stopped by user" }, "1-0");
    const seven = () => screen.getAllByTestId("agent-card").find((c) => c.dataset["agentId"] === "7");
    await waitFor(() => expect(seven()).toHaveAttribute("data-state", "stopped"));
    release();
    await waitFor(() => expect(calls.some((c) => c.path === "/api/agents/7/stop")).toBe(true));
    await act(() => new Promise((r) => setTimeout(r, 50)));
    expect(seven()).toHaveAttribute("data-state", "stopped");
  });

  it("asks before the kill switch, with focus in the dialog, and sends it once confirmed", async () => {
    const user = userEvent.setup();
    renderPage();
    await ready();
    const button = screen.getByTestId("stop-all");
    await user.click(button);
    const dialog = screen.getByRole("dialog", { name: "Stop every agent?" });
    expect(within(dialog).getByRole("button", { name: "Keep them running" })).toHaveFocus();
    await user.tab();
    expect(within(dialog).getByRole("button", { name: "Stop all agents" })).toHaveFocus();
    await user.tab();
    expect(within(dialog).getByRole("button", { name: "Keep them running" })).toHaveFocus(); // focus stays inside
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(button).toHaveFocus();
    expect(calls.some((c) => c.path === "/api/agents/stop-all")).toBe(false);

    await user.click(button);
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Stop all agents" }));
    expect(await screen.findByText("Kill switch: 1 agent stopped, 2 orders cancelled, 2 positions closed.")).toBeInTheDocument();
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(calls.filter((c) => c.path === "/api/agents/stop-all")).toHaveLength(1);
  });
});
