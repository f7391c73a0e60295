import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AppRoutes } from "./App";
import { ToastProvider } from "./ui/toast";

const SIGNED_IN = {
  authenticated: true,
  broker_id: "DEMO01",
  user_name: "Aarav Shah",
  email: "aarav@example.com",
  device_id: "d1",
  session_expires_at: "2026-12-08T10:00:00Z",
  csrf_token: "csrf",
  broker: { state: "connected", token_expires_at: "2026-12-08T00:30:00Z" },
};

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function renderApp(url: string) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <ToastProvider>
        <MemoryRouter initialEntries={[url]}>
          <AppRoutes />
        </MemoryRouter>
      </ToastProvider>
    </QueryClientProvider>,
  );
}

afterEach(() => {
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

describe("an ended session", () => {
  it("sends the user to sign in with a message, remembering where they were", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        if (request.url.endsWith("/api/auth/status")) return json(200, SIGNED_IN);
        if (request.url.endsWith("/api/events")) return new Response(null, { status: 401 });
        return json(401, { error: "NotAuthenticated", detail: "Your session has ended." });
      }),
    );
    renderApp("/devices");
    expect(await screen.findByText(/Your session has ended\. Sign in again/)).toBeInTheDocument();
    expect(sessionStorage.getItem("tradedesk.next")).toBe("/devices");
  });

  it("a signed-out visitor to a page is asked to sign in, and the page is remembered", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(200, { authenticated: false })));
    renderApp("/trades?symbol=INFY");
    expect(await screen.findByRole("heading", { name: "Sign in with your Kite account" })).toBeInTheDocument();
    expect(sessionStorage.getItem("tradedesk.next")).toBe("/trades?symbol=INFY");
  });

  it("signing out lands on the sign-in page saying so, without a page to come back to", async () => {
    let signedIn = true;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        if (request.url.endsWith("/api/auth/status")) return json(200, signedIn ? SIGNED_IN : { authenticated: false });
        if (request.url.endsWith("/api/auth/logout")) {
          signedIn = false;
          return new Response(null, { status: 204 });
        }
        if (request.url.endsWith("/api/auth/sessions")) return json(200, []);
        if (request.url.endsWith("/api/events")) return new Response("", { status: 200, headers: { "Content-Type": "text/event-stream" } });
        return json(200, {});
      }),
    );
    renderApp("/devices");
    await userEvent.click(await screen.findByRole("button", { name: "Sign out of this browser" }));
    expect(await screen.findByText("You have signed out.")).toBeInTheDocument();
    expect(sessionStorage.getItem("tradedesk.next")).toBeNull();
  });

  it("after signing in the user lands back where they were", async () => {
    sessionStorage.setItem("tradedesk.next", "/devices");
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        if (request.url.endsWith("/api/auth/status")) return json(200, SIGNED_IN);
        if (request.url.endsWith("/api/auth/sessions")) return json(200, []);
        if (request.url.endsWith("/api/events")) return new Response("", { status: 200, headers: { "Content-Type": "text/event-stream" } });
        return json(200, {});
      }),
    );
    renderApp("/");
    expect(await screen.findByRole("heading", { name: "Devices" })).toBeInTheDocument();
    expect(sessionStorage.getItem("tradedesk.next")).toBeNull();
  });
});
