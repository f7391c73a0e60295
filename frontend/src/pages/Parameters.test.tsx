import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, Route, Routes, useLocation } from "react-router";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ParamChange } from "../api/agents";
import type { AuthStatus } from "../api/auth";
import { STRATEGIES } from "../ui/SchemaForm.fixtures";
import { fakeApi, jsonResponse, type Call } from "../test-support";
import { ToastProvider } from "../ui/toast";
import Parameters, { SAVED_TEXT } from "./Parameters";
import { changeLines } from "./ParametersHistory";

const STATUS = { authenticated: true, user_name: "Asha", broker_id: "AB1234" } as AuthStatus;
const strangle = STRATEGIES[0]!;

const json = jsonResponse;

let calls: Call[];
let saved: Record<string, Record<string, unknown>>;
let history: ParamChange[];
let putAnswer: ((body: Record<string, unknown>) => Response | Promise<Response>) | null;

function change(id: number, changes: ParamChange["changes"], session_handle: string | null): ParamChange {
  return { id, at: new Date(Date.UTC(2025, 0, 6, 4, id)).toISOString(), changes, session_handle };
}

beforeEach(() => {
  putAnswer = null;
  saved = {
    short_strangle: {
      ...strangle.defaults,
      call_lots: 2,
      stop_loss_pct: { mon: 25, tue: 30, wed: 30, thu: 30, fri: 30 },
    },
    sma_crossover: { ...STRATEGIES[1]!.defaults },
  };
  // 25 entries, newest first: a first page of 20 and a second of 5.
  history = Array.from({ length: 25 }, (_, i) => {
    const id = 25 - i;
    return id === 25
      ? change(25, { stop_loss_pct: [{ mon: 30, tue: 30, wed: 30, thu: 30, fri: 30 }, { mon: 25, tue: 30, wed: 30, thu: 30, fri: 30 }] }, "hA")
      : id === 24
        ? change(24, { call_lots: [1, 2], entry_time: ["09:40:00", "09:45:00"] }, "hB")
        : change(id, { delta_low: [0.29, 0.3] }, id === 23 ? "gone" : null);
  });
  calls = fakeApi(async ({ method, path, body }, url) => {
    if (path === "/api/strategies") return json(STRATEGIES);
    if (path === "/api/auth/sessions") {
      return json([
        { handle: "hA", current: true, device_id: "d1", device_label: "Firefox on Linux", created_at: "2025-01-06T03:00:00Z", expires_at: "2025-01-13T03:00:00Z", ip: null, last_seen_at: "2025-01-06T05:00:00Z" },
        { handle: "hB", current: false, device_id: "d2", device_label: "Safari on iPhone", created_at: "2025-01-05T03:00:00Z", expires_at: "2025-01-12T03:00:00Z", ip: null, last_seen_at: "2025-01-06T04:00:00Z" },
      ]);
    }
    let m = /^\/api\/strategies\/(\w+)\/params$/.exec(path);
    if (m && method === "GET") return json(saved[m[1]!]);
    if (m && method === "PUT") {
      if (putAnswer) return putAnswer(body as Record<string, unknown>);
      saved[m[1]!] = body as Record<string, unknown>;
      return json(body);
    }
    m = /^\/api\/strategies\/(\w+)\/params\/history$/.exec(path);
    if (m) {
      const after = url.searchParams.get("after");
      const limit = Number(url.searchParams.get("limit") ?? "50");
      const list = m[1] === "short_strangle" ? history : [];
      return json(list.filter((h) => after === null || h.id < Number(after)).slice(0, limit));
    }
    return json({ error: "NotFound", detail: `no route ${method} ${path}` }, 404);
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

function Where() {
  const location = useLocation();
  return <p data-testid="where">{location.search}</p>;
}

function renderPage(entry = "/parameters") {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <ToastProvider>
        <MemoryRouter initialEntries={[entry]}>
          <Routes>
            <Route
              path="/parameters"
              element={
                <>
                  <Parameters status={STATUS} />
                  <Where />
                </>
              }
            />
          </Routes>
        </MemoryRouter>
      </ToastProvider>
    </QueryClientProvider>,
  );
}

const field = (name: string) => {
  const el = screen.getByTestId("params-form").querySelector<HTMLInputElement>(`[name="${name}"]`);
  if (el === null) throw new Error(`no input named ${name}`);
  return el;
};
const puts = () => calls.filter((c) => c.method === "PUT");

async function loaded() {
  await screen.findByTestId("params-form");
  await waitFor(() => expect(field("stop_loss_pct.mon")).toHaveValue(25));
}

describe("changeLines", () => {
  it("names only the nested fields that changed", () => {
    expect(changeLines({ stop_loss_pct: [{ mon: 30, tue: 30 }, { mon: 25, tue: 30 }], call_lots: [1, 2] })).toEqual([
      { field: "stop_loss_pct.mon", from: 30, to: 25 },
      { field: "call_lots", from: 1, to: 2 },
    ]);
  });
});

describe("Parameters", () => {
  it("fills the form with the saved parameters; dirty until saved or discarded", async () => {
    const user = userEvent.setup();
    renderPage();
    await loaded();
    expect(field("call_lots")).toHaveValue(2);
    expect(field("entry_time")).toHaveValue("09:40");
    expect(screen.getByTestId("params-save")).toBeDisabled();
    expect(screen.queryByTestId("params-dirty")).toBeNull();

    await user.clear(field("strike_window"));
    await user.type(field("strike_window"), "600");
    expect(screen.getByTestId("params-dirty")).toHaveTextContent("Unsaved changes");
    expect(screen.getByTestId("params-save")).toBeEnabled();

    await user.click(screen.getByRole("button", { name: "Discard changes" }));
    expect(field("strike_window")).toHaveValue(500);
    expect(screen.queryByTestId("params-dirty")).toBeNull();
    expect(puts()).toHaveLength(0);
  });

  it("refuses out-of-bounds values inline before sending", async () => {
    const user = userEvent.setup();
    renderPage();
    await loaded();
    await user.clear(field("stop_loss_pct.mon"));
    await user.type(field("stop_loss_pct.mon"), "500");
    await user.clear(field("first_profit_points"));
    await user.type(field("first_profit_points"), "0");
    await user.click(screen.getByTestId("params-save"));
    expect(field("stop_loss_pct.mon")).toHaveAttribute("aria-invalid", "true");
    expect(field("stop_loss_pct.mon")).toHaveAccessibleDescription(/Must be at most 200/);
    expect(field("first_profit_points")).toHaveAccessibleDescription(/Must be more than 0/);
    expect(screen.getByRole("alert")).toHaveTextContent("Fix the highlighted fields before saving.");
    expect(field("stop_loss_pct.mon")).toHaveFocus();
    expect(puts()).toHaveLength(0);
  });

  it("saves the whole set, says so, and reloads the history", async () => {
    const user = userEvent.setup();
    renderPage();
    await loaded();
    const historyReads = calls.filter((c) => c.path.endsWith("/history")).length;
    await user.clear(field("stop_loss_pct.tue"));
    await user.type(field("stop_loss_pct.tue"), "40");
    await user.click(screen.getByTestId("params-save"));
    expect(await screen.findByText(SAVED_TEXT)).toBeInTheDocument();
    expect(puts()).toHaveLength(1);
    expect(puts()[0]!.body).toEqual({
      ...saved["short_strangle"],
      stop_loss_pct: { mon: 25, tue: 40, wed: 30, thu: 30, fri: 30 },
    });
    expect(Object.keys(puts()[0]!.body as object).sort()).toEqual(Object.keys(strangle.defaults).sort());
    await waitFor(() => expect(calls.filter((c) => c.path.endsWith("/history")).length).toBeGreaterThan(historyReads));
    expect(screen.queryByTestId("params-dirty")).toBeNull();
  });

  it("puts the API's field errors next to the fields and keeps what was typed", async () => {
    const user = userEvent.setup();
    putAnswer = () =>
      json(
        {
          error: "ValidationError",
          detail: "The request is not valid: check delta_low, delta_high.",
          errors: [
            { loc: ["body", "delta_low"], msg: "delta_low must be below delta_high", type: "inconsistent" },
            { loc: ["body", "delta_high"], msg: "delta_low must be below delta_high", type: "inconsistent" },
          ],
        },
        422,
      );
    renderPage();
    await loaded();
    await user.clear(field("delta_low"));
    await user.type(field("delta_low"), "0.4");
    await user.click(screen.getByTestId("params-save"));
    await waitFor(() => expect(field("delta_high")).toHaveAccessibleDescription(/delta_low must be below delta_high/));
    expect(field("delta_low")).toHaveAccessibleDescription(/delta_low must be below delta_high/);
    expect(field("delta_low")).toHaveValue(0.4);
    expect(screen.getByTestId("params-dirty")).toBeInTheDocument();

    // Editing the field clears the API's complaint about it.
    await user.type(field("delta_low"), "5");
    expect(field("delta_low")).not.toHaveAccessibleDescription(/must be below/);
  });

  it("offers a retry after a network failure, keeping the form", async () => {
    const user = userEvent.setup();
    putAnswer = () => Promise.reject(new TypeError("Failed to fetch"));
    renderPage();
    await loaded();
    await user.clear(field("lock_points"));
    await user.type(field("lock_points"), "12");
    await user.click(screen.getByTestId("params-save"));
    const alert = await screen.findByText(/Not saved: The API could not be reached/);
    expect(field("lock_points")).toHaveValue(12);
    putAnswer = null;
    await user.click(within(alert).getByRole("button", { name: "Try again" }));
    expect(await screen.findByText(SAVED_TEXT)).toBeInTheDocument();
    expect(saved["short_strangle"]!["lock_points"]).toBe(12);
  });

  it("fills in the defaults only after confirming, and saves nothing by itself", async () => {
    const user = userEvent.setup();
    renderPage();
    await loaded();
    await user.click(screen.getByRole("button", { name: "Reset to defaults" }));
    const dialog = screen.getByRole("dialog", { name: "Reset to the defaults?" });
    await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(field("call_lots")).toHaveValue(2);

    await user.click(screen.getByRole("button", { name: "Reset to defaults" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Fill in the defaults" }));
    expect(field("call_lots")).toHaveValue(1);
    expect(field("stop_loss_pct.mon")).toHaveValue(30);
    expect(screen.getByTestId("params-dirty")).toBeInTheDocument();
    expect(puts()).toHaveLength(0);
  });

  it("lists the history newest first with the device, and loads older changes", async () => {
    const user = userEvent.setup();
    renderPage();
    const section = await screen.findByTestId("params-history");
    await waitFor(() => expect(within(section).getAllByTestId("history-entry")).toHaveLength(20));
    const [first, second, third, fourth] = within(section).getAllByTestId("history-entry");
    expect(first).toHaveTextContent("stop_loss_pct.mon 30 → 25");
    expect(first).toHaveTextContent("this device");
    expect(second).toHaveTextContent("call_lots 1 → 2");
    expect(second).toHaveTextContent("entry_time 09:40 → 09:45");
    expect(second).toHaveTextContent("Safari on iPhone");
    expect(third).toHaveTextContent("another device");
    expect(fourth).toHaveTextContent("—");

    await user.click(within(section).getByRole("button", { name: "Load more" }));
    await waitFor(() => expect(within(section).getAllByTestId("history-entry")).toHaveLength(25));
    const more = calls.filter((c) => c.path.endsWith("/history") && c.query.get("after") !== null);
    expect(more.map((c) => c.query.get("after"))).toEqual(["6"]);
    expect(within(section).queryByRole("button", { name: "Load more" })).toBeNull();
  });

  it("follows ?strategy= and writes the choice back to the address", async () => {
    const user = userEvent.setup();
    renderPage("/parameters?strategy=sma_crossover");
    await screen.findByTestId("params-form");
    await waitFor(() => expect(field("tradingsymbol")).toHaveValue("RELIANCE"));
    expect(screen.getByRole("combobox", { name: "Strategy" })).toHaveValue("sma_crossover");
    await user.selectOptions(screen.getByRole("combobox", { name: "Strategy" }), "short_strangle");
    expect(screen.getByTestId("where")).toHaveTextContent("?strategy=short_strangle");
    await loaded();
  });
});
