import { ApiError, setUnauthorizedHandler } from "./client";
import { csvFileName, downloadTradesCsv, filterQuery, presetOf, presetRange, syncResultText } from "./trading";

describe("presetRange", () => {
  it("counts from the API's today, with Indian financial years", () => {
    expect(presetRange("today", "2026-11-20")).toEqual({ from: "2026-11-20", to: "2026-11-20" });
    expect(presetRange("7d", "2026-11-20")).toEqual({ from: "2026-11-14", to: "2026-11-20" });
    expect(presetRange("30d", "2026-03-01")).toEqual({ from: "2026-01-31", to: "2026-03-01" });
    expect(presetRange("fy", "2026-11-20")).toEqual({ from: "2026-04-01", to: "2026-11-20" });
    expect(presetRange("fy", "2026-02-10")).toEqual({ from: "2025-04-01", to: "2026-02-10" });
    expect(presetRange("last_fy", "2026-02-10")).toEqual({ from: "2024-04-01", to: "2025-03-31" });
  });
  it("recognises a range that is a preset", () => {
    expect(presetOf({ from: "2025-04-01", to: "2026-03-31" }, "2026-11-20")).toBe("last_fy");
    expect(presetOf({ from: "2025-04-02", to: "2026-03-31" }, "2026-11-20")).toBeNull();
  });
});

describe("filterQuery", () => {
  it("drops empty filters so equal filters make equal keys", () => {
    expect(filterQuery({ from: "", symbol: " INFY ", strategy: undefined, status: "open" })).toEqual({
      symbol: "INFY",
      status: "open",
    });
  });
});

describe("syncResultText", () => {
  it("counts in words", () => {
    expect(syncResultText({ fills_new: 3, trades_closed: 2 })).toBe("3 new fills, 2 trades closed");
    expect(syncResultText({ fills_new: 1, trades_closed: 1 })).toBe("1 new fill, 1 trade closed");
  });
});

describe("downloadTradesCsv", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
    setUnauthorizedHandler(null);
  });

  it("names the file after the server's Content-Disposition when it can read it", () => {
    expect(csvFileName({}, 'attachment; filename="trades_all_all.csv"')).toBe("trades_all_all.csv");
    expect(csvFileName({ from: "2026-04-01", to: "2026-11-20" }, null)).toBe("trades_2026-04-01_2026-11-20.csv");
  });

  it("sends a 401 to the sign-in handler and rejects with the API's error", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        new Response(JSON.stringify({ error: "SessionExpired", detail: "Your session has expired; sign in again." }), {
          status: 401,
          headers: { "Content-Type": "application/json" },
        }),
      ),
    );
    const heard = vi.fn();
    setUnauthorizedHandler(heard);
    const click = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => undefined);
    const failure = downloadTradesCsv({ symbol: "INFY" });
    await expect(failure).rejects.toBeInstanceOf(ApiError);
    await expect(failure).rejects.toMatchObject({ status: 401, message: "Your session has expired; sign in again." });
    expect(heard).toHaveBeenCalledTimes(1);
    expect(click).not.toHaveBeenCalled();
  });

  it("turns a network failure into a retryable ApiError", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("Failed to fetch"))));
    await expect(downloadTradesCsv({})).rejects.toMatchObject({ status: 0, retryable: true });
  });
});
