import { afterEach, describe, expect, it, vi } from "vitest";
import { api, ApiError, call, parseFieldErrors, setCsrfToken, setUnauthorizedHandler } from "./client";

function answer(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === null ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

function stubFetch(response: () => Response | Promise<Response>) {
  const seen: Request[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: Request) => {
      seen.push(input);
      return response();
    }),
  );
  return seen;
}

afterEach(() => {
  vi.unstubAllGlobals();
  setCsrfToken(null);
  setUnauthorizedHandler(null);
});

describe("the API client", () => {
  it("always sends the session cookie, and the CSRF token only on unsafe requests", async () => {
    const seen = stubFetch(() => answer(200, { fills_new: 1, trades_closed: 0 }));
    setCsrfToken("csrf-123");
    await call(api.GET("/api/pnl/summary"));
    await call(api.POST("/api/sync", { body: {} }));
    expect(seen).toHaveLength(2);
    expect(seen.every((r) => r.credentials === "include")).toBe(true);
    expect(seen[0]?.headers.get("X-CSRF-Token")).toBeNull();
    expect(seen[1]?.method).toBe("POST");
    expect(seen[1]?.headers.get("X-CSRF-Token")).toBe("csrf-123");
  });

  it("hands every 401 to the one handler and throws an ApiError", async () => {
    stubFetch(() => answer(401, { error: "NotAuthenticated", detail: "Sign in first." }));
    const handler = vi.fn();
    setUnauthorizedHandler(handler);
    const failure = call(api.GET("/api/trades"));
    await expect(failure).rejects.toMatchObject({ status: 401, code: "NotAuthenticated", message: "Sign in first." });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("reads Retry-After from a 503 and calls it retryable", async () => {
    stubFetch(() => answer(503, { error: "DependencyDown", detail: "Redis is down." }, { "Retry-After": "7" }));
    const error = await call(api.GET("/api/agents")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).retryAfterS).toBe(7);
    expect((error as ApiError).retryable).toBe(true);
  });

  it("turns a network failure into a retryable ApiError with status 0", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => {
        throw new TypeError("Failed to fetch");
      }),
    );
    const error = await call(api.GET("/api/agents")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(0);
    expect((error as ApiError).retryable).toBe(true);
  });

  it("names the fields of a 422 by their path without where they came from", async () => {
    stubFetch(() =>
      answer(422, {
        error: "InvalidInput",
        detail: "2 fields are invalid",
        errors: [
          { loc: ["body", "stop_loss_pct", "mon"], msg: "Input should be less than or equal to 100" },
          { loc: ["body", "call_lots"], msg: "Input should be greater than 0" },
        ],
      }),
    );
    const error = (await call(api.PUT("/api/risk", { body: { daily_loss_limit: -1 } })).catch((e: unknown) => e)) as ApiError;
    expect(error.status).toBe(422);
    expect(error.fieldErrors).toEqual([
      { field: "stop_loss_pct.mon", message: "Input should be less than or equal to 100" },
      { field: "call_lots", message: "Input should be greater than 0" },
    ]);
    expect(error.retryable).toBe(false);
  });

  it("ignores bodies that are not a field-error list", () => {
    expect(parseFieldErrors(null)).toEqual([]);
    expect(parseFieldErrors({ errors: "nope" })).toEqual([]);
  });
});
