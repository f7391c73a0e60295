import { render, waitFor } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { EventStreamProvider, SseParser, useLiveMessages } from "./events";

describe("SseParser", () => {
  it("splits events across chunk boundaries and keeps the last id", () => {
    const parser = new SseParser();
    const got: [string, string, string | null][] = [];
    const emit = (event: string, data: string, id: string | null) => got.push([event, data, id]);
    parser.feed(": connected\nretry: 3000\n\nevent: agent\nid: 17-0\nda", emit);
    expect(got).toEqual([]);
    parser.feed('ta: {"id":1}\n\nevent: event\r\nid: 18-0\r\ndata: {"a":\r\ndata: 2}\r\n\r\n', emit);
    expect(got).toEqual([
      ["agent", '{"id":1}', "17-0"],
      ["event", '{"a":\n2}', "18-0"],
    ]);
    expect(parser.retryMs).toBe(3000);
  });

  it("ignores comments (keep-alive pings) and events without data", () => {
    const parser = new SseParser();
    const got: string[] = [];
    parser.feed(": ping\n\nevent: gap\n\n", (event) => got.push(event));
    expect(got).toEqual([]);
  });
});

describe("EventStreamProvider", () => {
  it("resumes after the server ends the stream, with Last-Event-ID, after the server's retry hint", async () => {
    const seen: (string | null)[] = [];
    const bodies = [
      'retry: 50\n\nevent: agent\nid: 5-0\ndata: {"id":1,"state":"running"}\n\n: server shutting down; reconnect\nretry: 60\n\n',
      'event: event\nid: 6-0\ndata: {"id":2,"message":"after"}\n\n',
    ];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (_url: string, init: RequestInit) => {
        seen.push(new Headers(init.headers).get("Last-Event-ID"));
        const body = bodies.shift();
        if (body === undefined) return new Promise<Response>(() => {}); // stays open
        return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
      }),
    );
    const messages: string[] = [];
    function Probe() {
      useLiveMessages((m) => messages.push(`${m.kind}:${m.id}`));
      return null;
    }
    const view = render(
      <EventStreamProvider enabled>
        <Probe />
      </EventStreamProvider>,
    );
    await waitFor(() => expect(messages).toEqual(["agent:5-0", "event:6-0"]));
    expect(seen.slice(0, 2)).toEqual([null, "5-0"]);
    view.unmount();
    vi.unstubAllGlobals();
  });
});
