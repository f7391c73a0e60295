import { describe, expect, it } from "vitest";
import { SseParser } from "./events";

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
