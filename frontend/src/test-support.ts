/** Helpers for the Vitest suites: a fake API behind `fetch` that records every call, and JSON answers. */
import { vi } from "vitest";

export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** One request the page sent: its method, path, query and parsed JSON body. */
export interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}

/** Stubs `fetch` with `answer`; returns the list every call is recorded in, in order. */
export function fakeApi(answer: (call: Call, url: URL) => Response | Promise<Response>): Call[] {
  const calls: Call[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const method = input instanceof Request ? input.method : (init?.method ?? "GET");
      const text = input instanceof Request && method !== "GET" ? await input.text() : "";
      const call: Call = { method, path: url.pathname, query: url.searchParams, body: text ? JSON.parse(text) : null };
      calls.push(call);
      return answer(call, url);
    }),
  );
  return calls;
}
