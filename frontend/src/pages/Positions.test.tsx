import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";
import type { AuthStatus } from "../api/auth";
import { ToastProvider } from "../ui/toast";
import Positions from "./Positions";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

const POSITIONS = {
  items: [
    {
      tradingsymbol: "NIFTY24NOV24000CE",
      exchange: "NFO",
      product: "MIS",
      quantity: -50,
      average_price: "120.50",
      last_price: "100.00",
      pnl: "1025.00",
      realised: "0",
      unrealised: "1025.00",
    },
    {
      tradingsymbol: "INFY",
      exchange: "NSE",
      product: "MIS",
      quantity: 0,
      average_price: "1500",
      last_price: "1510",
      pnl: "475.00",
      realised: "475.00",
      unrealised: "0",
    },
  ],
  total_pnl: "1500.00",
  unrealised_pnl: "1025.00",
};

function setup(answers: (() => Response)[]) {
  let calls = 0;
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname !== "/api/positions") return json({ error: "NotFound", detail: "no route" }, 404);
      const answer = answers[Math.min(calls, answers.length - 1)]!;
      calls += 1;
      return answer();
    }),
  );
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter>
        <ToastProvider>
          <Positions status={{ authenticated: true } as AuthStatus} />
        </ToastProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return { calls: () => calls };
}

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("Positions", () => {
  it("lists positions with totals", async () => {
    setup([() => json(POSITIONS)]);
    const table = await screen.findByTestId("positions-table");
    const rows = within(table).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("NIFTY24NOV24000CE");
    expect(rows[1]).toHaveTextContent("−50");
    expect(rows[1]).toHaveTextContent("+₹1,025.00");
    expect(screen.getByTestId("positions-total-pnl")).toHaveTextContent("+₹1,500.00");
    expect(screen.getByTestId("positions-unrealised-pnl")).toHaveTextContent("+₹1,025.00");
    expect(screen.getByTestId("positions-open-count")).toHaveTextContent("1");
    const totals = within(table).getByRole("rowheader", { name: "Total" }).closest("tr")!;
    expect(totals).toHaveTextContent("+₹475.00"); // realised summed over the rows
    expect(screen.getByTestId("positions-total-row")).toHaveTextContent("+₹1,500.00");
    expect(screen.getByTestId("positions-updated")).toHaveTextContent(/Last updated \d\d:\d\d:\d\d IST/);
  });

  it("keeps the last figures when the broker fails, and recovers on retry", async () => {
    const user = userEvent.setup();
    const { calls } = setup([
      () => json(POSITIONS),
      () => json({ error: "BrokerUnavailable", detail: "The broker failed." }, 502),
      () => json({ ...POSITIONS, total_pnl: "1600.00" }),
    ]);
    await screen.findByTestId("positions-table");
    await user.click(screen.getByRole("button", { name: "Refresh" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Could not refresh positions; showing the last figures.");
    expect(screen.getByRole("alert")).toHaveTextContent("The broker failed.");
    expect(screen.getByTestId("positions-total-pnl")).toHaveTextContent("+₹1,500.00");
    await user.click(screen.getByRole("button", { name: "Retry" }));
    await waitFor(() => expect(screen.getByTestId("positions-total-pnl")).toHaveTextContent("+₹1,600.00"));
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    expect(calls()).toBe(3);
  });

  it("shows an error with a retry when the first load fails", async () => {
    setup([() => json({ error: "BrokerTimeout", detail: "The broker did not answer in time." }, 504)]);
    expect(await screen.findByRole("alert")).toHaveTextContent("Could not load positions.");
    expect(screen.getByRole("button", { name: "Retry" })).toBeEnabled();
    expect(screen.queryByTestId("positions-table")).not.toBeInTheDocument();
  });

  it("polls every few seconds", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const { calls } = setup([() => json(POSITIONS)]);
    await screen.findByTestId("positions-table");
    expect(calls()).toBe(1);
    await act(() => vi.advanceTimersByTimeAsync(3100));
    await waitFor(() => expect(calls()).toBe(2));
  });

  it("says when there are no positions", async () => {
    setup([() => json({ items: [], total_pnl: "0", unrealised_pnl: "0" })]);
    expect(await screen.findByText("No positions today.")).toBeInTheDocument();
  });
});
