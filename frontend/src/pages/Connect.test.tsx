import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, Route, Routes } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ToastProvider } from "../ui/toast";
import Connect, { validateCredentials } from "./Connect";

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function renderAt(url: string) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <ToastProvider>
        <MemoryRouter initialEntries={[url]}>
          <Routes>
            <Route path="/connect" element={<Connect />} />
            <Route path="/" element={<p>dashboard</p>} />
          </Routes>
        </MemoryRouter>
      </ToastProvider>
    </QueryClientProvider>,
  );
}

afterEach(() => vi.unstubAllGlobals());

describe("validateCredentials", () => {
  it("asks for both fields and refuses keys with odd characters", () => {
    expect(validateCredentials({ api_key: "", api_secret: "" }, "api_secret")).toEqual({
      api_key: "Enter your Kite Connect API key.",
      api_secret: "Enter your API secret.",
    });
    expect(validateCredentials({ api_key: "a b", api_secret: "s" }, "api_secret")).toHaveProperty("api_key");
    expect(validateCredentials({ api_key: "k", access_token: "tok en" }, "access_token")).toHaveProperty("access_token");
    expect(validateCredentials({ api_key: "kite-app", api_secret: "s3cret" }, "api_secret")).toEqual({});
  });
});

describe("Connect", () => {
  it("explains why the user is here and does not send an incomplete form", async () => {
    const fetch = vi.fn(async () => json(200, { authenticated: false }));
    vi.stubGlobal("fetch", fetch);
    renderAt("/connect?reason=expired&next=/trades");
    expect(await screen.findByText(/Your session has ended/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Continue to Kite" }));
    expect(screen.getByText("Enter your Kite Connect API key.")).toBeInTheDocument();
    expect(fetch).toHaveBeenCalledTimes(1); // the status check only
    expect(sessionStorage.getItem("tradedesk.next")).toBe("/trades");
  });

  it("shows the broker's refusal of an access token and keeps what was typed", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) =>
        request.url.endsWith("/api/auth/status")
          ? json(200, { authenticated: false })
          : json(400, { error: "SignInRejected", detail: "Kite refused that access token." }),
      ),
    );
    renderAt("/connect");
    await userEvent.click(await screen.findByRole("tab", { name: "Access token" }));
    await userEvent.type(screen.getByLabelText("API key"), "kite-app");
    await userEvent.type(screen.getByLabelText("Access token", { selector: "input" }), "expired-token");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Kite refused that access token.")).toBeInTheDocument();
    expect(screen.getByLabelText("API key")).toHaveValue("kite-app");
  });

  it("shows a failed redirect sign-in's message from the callback", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(200, { authenticated: false })));
    renderAt("/connect?error=invalid_state");
    expect(await screen.findByRole("alert")).toHaveTextContent(/already used/);
  });
});
