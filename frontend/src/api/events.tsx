/**
 * The user's live stream (GET /api/events), one per tab: read with fetch so it carries the session cookie
 * and `Last-Event-ID` on every reconnect (EventSource cannot resume after it gives up), and so a 401 reaches
 * the one sign-in handler. Its state feeds the connectivity indicator; pages subscribe to its messages.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { apiUrl, errorFromResponse, reportUnauthorized, type Schemas } from "./client";

export type Connectivity = "connecting" | "live" | "reconnecting" | "offline";

export type LiveMessage =
  | { kind: "agent"; id: string; data: Schemas["AgentRead"] }
  | { kind: "event"; id: string; data: Schemas["EventRead"] }
  | { kind: "gap"; id: string; data: { last_id: string; oldest_id: string | null } };

type Listener = (message: LiveMessage) => void;

interface StreamApi {
  connectivity: Connectivity;
  subscribe: (listener: Listener) => () => void;
  reconnect: () => void;
}

const StreamContext = createContext<StreamApi | null>(null);

/** Parses a text/event-stream body into messages (the subset the API sends: event, id, data, retry). */
export class SseParser {
  private buffer = "";
  private event = "message";
  private data: string[] = [];
  private id: string | null = null;
  retryMs: number | null = null;

  feed(chunk: string, emit: (event: string, data: string, id: string | null) => void): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      if (line === "") {
        if (this.data.length > 0) emit(this.event, this.data.join("\n"), this.id);
        this.event = "message";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") this.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
  }
}

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

export function EventStreamProvider({ children, enabled }: { children: ReactNode; enabled: boolean }) {
  const [connectivity, setConnectivity] = useState<Connectivity>("connecting");
  const [generation, setGeneration] = useState(0);
  const listeners = useRef(new Set<Listener>());
  const lastId = useRef<string | null>(null);

  useEffect(() => {
    if (!enabled) return;
    const controller = new AbortController();
    let attempt = 0;
    let parser = new SseParser();
    let timer: number | undefined;
    let stopped = false;

    const run = async (): Promise<void> => {
      setConnectivity(attempt === 0 ? "connecting" : "reconnecting");
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      if (lastId.current !== null) headers["Last-Event-ID"] = lastId.current;
      parser = new SseParser();
      try {
        const response = await fetch(apiUrl("/api/events"), {
          credentials: "include",
          headers,
          signal: controller.signal,
          cache: "no-store",
        });
        if (!response.ok || response.body === null) {
          const error = await errorFromResponse(response);
          if (response.status === 401) {
            reportUnauthorized(error);
            setConnectivity("offline");
            return;
          }
          if (response.status === 400) lastId.current = null; // an id the stream never gave: start afresh
          throw error;
        }
        setConnectivity("live");
        attempt = 0;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(value, (event, data, id) => {
            if (id !== null) lastId.current = id;
            if (event !== "agent" && event !== "event" && event !== "gap") return;
            let parsed: unknown;
            try {
              parsed = JSON.parse(data);
            } catch {
              return;
            }
            const message = { kind: event, id: id ?? "", data: parsed } as LiveMessage;
            for (const listener of listeners.current) listener(message);
          });
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        void error;
      }
      if (stopped) return;
      // The stream ended or failed: come back with Last-Event-ID after a growing pause.
      setConnectivity(attempt >= 2 ? "offline" : "reconnecting");
      // After a stream that was live, the server's own hint (a stopping instance spreads its clients'
      // returns); after failed attempts, a growing pause.
      const backoff = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)] ?? 15000;
      const delay = attempt === 0 && parser.retryMs !== null ? parser.retryMs : backoff;
      attempt += 1;
      timer = window.setTimeout(() => void run(), delay);
    };
    void run();
    return () => {
      stopped = true;
      controller.abort();
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [enabled, generation]);

  const subscribe = useCallback((listener: Listener) => {
    listeners.current.add(listener);
    return () => {
      listeners.current.delete(listener);
    };
  }, []);
  const reconnect = useCallback(() => setGeneration((g) => g + 1), []);
  const value = useMemo<StreamApi>(
    () => ({
      connectivity: enabled ? connectivity : "offline",
      subscribe,
      reconnect,
    }),
    [connectivity, enabled, subscribe, reconnect],
  );
  return <StreamContext.Provider value={value}>{children}</StreamContext.Provider>;
}

export function useEventStream(): StreamApi {
  const value = useContext(StreamContext);
  if (value === null) throw new Error("useEventStream outside EventStreamProvider");
  return value;
}

/** Calls `listener` for every live message while the component is mounted. */
export function useLiveMessages(listener: Listener): void {
  const { subscribe } = useEventStream();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => subscribe((m) => latest.current(m)), [subscribe]);
}
