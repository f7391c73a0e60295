/**
 * The live event console: the latest events of the shown agents (read once, so a reload is not empty) merged
 * with what the live stream brings, each event once by its id (a reconnect resumes with Last-Event-ID and a
 * backfill may overlap what already arrived), oldest at the top, newest at the bottom, capped.
 */
import { useQueryClient } from "@tanstack/react-query";
import { useLayoutEffect, useMemo, useRef, useState } from "react";
import { agentKeys, useAgentEventsBackfill, type Agent, type AgentEvent, type Strategy } from "../api/agents";
import { useLiveMessages } from "../api/events";
import { formatDateTime, formatTime } from "../lib/format";
import { ErrorState } from "../ui/states";

export const CONSOLE_LINES = 300;
const LIVE_KEPT = 600;

/** Events by id, oldest first, the last `cap` of them (of one agent when `agentId` is given). */
export function mergeEvents(
  sources: readonly (readonly AgentEvent[])[],
  agentId: number | null = null,
  cap = CONSOLE_LINES,
): AgentEvent[] {
  const byId = new Map<number, AgentEvent>();
  for (const source of sources) for (const event of source) byId.set(event.id, event);
  return [...byId.values()]
    .filter((e) => agentId === null || e.agent_id === agentId)
    .sort((a, b) => a.id - b.id)
    .slice(-cap);
}

export function EventConsole({
  agents,
  strategies,
  onEvent,
}: {
  /** The agents whose cards are shown; the first live ones and the newest are read back. */
  agents: readonly Agent[];
  strategies: readonly Strategy[] | undefined;
  onEvent?: (event: AgentEvent) => void;
}) {
  const queryClient = useQueryClient();
  const [live, setLive] = useState<AgentEvent[]>([]);
  const [filter, setFilter] = useState<number | null>(null);

  useLiveMessages((message) => {
    if (message.kind === "event") {
      const event = message.data;
      onEvent?.(event);
      setLive((known) => (known.some((e) => e.id === event.id) ? known : [...known, event].slice(-LIVE_KEPT)));
    } else if (message.kind === "gap") {
      // Events were dropped between the last one seen and the stream's resumption: read them back.
      void queryClient.invalidateQueries({ queryKey: agentKeys.allEvents });
    }
  });

  const backfillIds = useMemo(() => {
    const ids = new Set<number>();
    for (const a of agents) if (a.state !== "stopped" && a.state !== "failed") ids.add(a.id);
    const newest = [...agents].sort((a, b) => b.id - a.id)[0];
    if (newest !== undefined) ids.add(newest.id);
    if (filter !== null) ids.add(filter);
    return [...ids].sort((a, b) => a - b);
  }, [agents, filter]);
  const backfill = useAgentEventsBackfill(backfillIds);
  const failed = backfill.filter((q) => q.error);
  const loading = backfill.some((q) => q.isPending);
  const backfillData = backfill.map((q) => q.data?.items);

  const lines = mergeEvents([...backfillData.map((items) => items ?? []), live], filter);
  const newest = lines[lines.length - 1]?.id;

  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  useLayoutEffect(() => {
    const el = box.current;
    if (el !== null && stick.current) el.scrollTop = el.scrollHeight;
  }, [newest, lines.length]);

  const strategyName = new Map((strategies ?? []).map((s) => [s.name, s.title]));
  const agentName = new Map(agents.map((a) => [a.id, strategyName.get(a.strategy) ?? a.strategy]));
  const filterId = "event-console-filter";

  return (
    <div className="event-console-wrap">
      <div className="row event-console-bar">
        <label htmlFor={filterId}>
          Show events of
          <select
            id={filterId}
            value={filter === null ? "" : String(filter)}
            onChange={(e) => setFilter(e.target.value === "" ? null : Number(e.target.value))}
          >
            <option value="">All shown agents</option>
            {agents.map((a) => (
              <option key={a.id} value={String(a.id)}>
                #{a.id} {agentName.get(a.id)}
              </option>
            ))}
          </select>
        </label>
        <span className="muted event-console-note">
          {loading ? "Loading earlier events…" : `Latest ${CONSOLE_LINES} lines, newest at the bottom; times in IST.`}
        </span>
      </div>
      {failed.length > 0 && (
        <ErrorState
          title="Could not load earlier events."
          error={failed[0]?.error}
          onRetry={() => failed.forEach((q) => void q.refetch())}
        />
      )}
      <div
        ref={box}
        className="event-console"
        role="log"
        aria-live="polite"
        aria-label="Agent events"
        data-testid="event-console"
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 32;
        }}
      >
        {lines.length === 0 ? (
          <p className="muted event-console-empty">{loading ? "Loading…" : "No events yet."}</p>
        ) : (
          <ol>
            {lines.map((e) => (
              <li key={e.id} className={`event-line level-${e.level}`} data-testid="event-line" data-event-id={e.id}>
                <time dateTime={e.at} title={`${formatDateTime(e.at)} IST`}>
                  {formatTime(e.at)}
                </time>
                <span className="ev-agent" title={agentName.get(e.agent_id)}>
                  #{e.agent_id}
                </span>
                <span className={`ev-kind kind-${e.kind}`}>{e.kind}</span>
                <span className="ev-level">{e.level}</span>
                <span className="ev-message">{e.message}</span>
              </li>
            ))}
          </ol>
        )}
      </div>
    </div>
  );
}
