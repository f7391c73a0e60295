/** The live trader's status cards, the paused-agents banner, and how reasons and times read to a trader. */
import { useEffect, useState } from "react";
import { useNavigate } from "react-router";
import { LIVE_STATES, useStopAgent, type Agent, type Strategy } from "../api/agents";
import { ApiError } from "../api/client";
import { formatDateTime, formatDuration, formatPnl, pnlClass } from "../lib/format";
import { connectPath, rememberNext } from "../session";
import { errorText } from "../ui/states";

export const BROKER_PAUSE_REASONS: ReadonlySet<string> = new Set(["broker_token_expired", "broker_disconnected"]);

const STATE_LABEL: Record<Agent["state"], string> = {
  starting: "Starting",
  running: "Running",
  paused: "Paused",
  stopping: "Stopping",
  stopped: "Stopped",
  failed: "Failed",
};

/** The agent's reason as a sentence (the API's codes for the known ones, its own text otherwise). */
export function reasonText(reason: string | null | undefined): string | null {
  if (!reason) return null;
  switch (reason) {
    case "broker_token_expired":
      return "Paused: the Kite access token has expired (Kite ends them at 06:00 IST). Reconnect to resume.";
    case "broker_disconnected":
      return "Paused: your Kite account is disconnected. Reconnect to resume.";
    case "daily_loss_limit_reached":
      return "Daily loss limit reached: positions squared off, no new entries today.";
    case "stopped by user":
      return "Stopped by you.";
    case "kill switch":
      return "Stopped by the kill switch (Stop all).";
  }
  if (reason.startsWith("order rejected:")) {
    return `The broker rejected an order: ${reason.slice("order rejected:".length).trim()}`;
  }
  if (reason.startsWith("stopped; square-off incomplete:")) {
    const why = reason.slice("stopped; square-off incomplete:".length).trim();
    return `Stopped, but the square-off is incomplete (${why}). Check your positions.`;
  }
  if (reason.startsWith("parameters no longer valid:")) {
    return `Failed: the saved parameters are no longer valid (${reason.slice("parameters no longer valid:".length).trim()}).`;
  }
  return reason[0]!.toUpperCase() + reason.slice(1) + (/[.!?]$/.test(reason) ? "" : ".");
}

const CLOCK_BEHIND_MS = 3_600_000;

/**
 * The API's "now". It may run on kitesim's simulated clock (hours away from this browser's, or faster), so the
 * offset is learnt from the API's own recent times — heartbeats, event times, state changes — each a moment
 * the API's clock had already reached when it was received. The largest offset seen wins, unless it is older
 * than two minutes (the simulated clock may have been moved back). A time in this browser's recent past says
 * nothing about the clock (a late heartbeat looks the same), so only a clock ahead, or more than an hour
 * behind, moves "now" away from this browser's.
 */
export class ApiClock {
  private best: { offset: number; seenAt: number } | null = null;

  observe(iso: string | null | undefined, receivedAt: number = Date.now()): void {
    if (!iso) return;
    const offset = Date.parse(iso) - receivedAt;
    if (!Number.isFinite(offset)) return;
    if (this.best === null || offset > this.best.offset || receivedAt - this.best.seenAt > 120_000) {
      this.best = { offset, seenAt: receivedAt };
    }
  }

  /** `fresh`: the agent's status just changed (a live message), so its times are the API's "just now". */
  observeAgent(agent: Agent, receivedAt: number = Date.now(), fresh = false): void {
    if (!LIVE_STATES.has(agent.state) && !fresh) return;
    this.observe(agent.heartbeat_at, receivedAt);
    if (agent.state === "starting") this.observe(agent.started_at, receivedAt);
    if (fresh) this.observe(agent.stopped_at, receivedAt);
  }

  offset(): number {
    const offset = this.best?.offset ?? 0;
    return offset > 0 || offset < -CLOCK_BEHIND_MS ? offset : 0;
  }

  now(browserNow: number = Date.now()): number {
    return browserNow + this.offset();
  }
}

function useTick(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(timer);
  }, [ms]);
  return now;
}

function ago(ms: number): string {
  if (ms < 0) return "just now";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s ago`;
  return `${formatDuration(s)} ago`;
}

/** Live agents first (newest first), then the most recent stopped or failed ones. */
export function orderAgents(agents: readonly Agent[], recentStopped = 5): Agent[] {
  const live = agents.filter((a) => LIVE_STATES.has(a.state)).sort((a, b) => b.id - a.id);
  const ended = agents
    .filter((a) => !LIVE_STATES.has(a.state))
    .sort((a, b) => (b.stopped_at ?? b.started_at).localeCompare(a.stopped_at ?? a.started_at) || b.id - a.id)
    .slice(0, recentStopped);
  return [...live, ...ended];
}

function lotsSummary(agent: Agent): string | null {
  const parts = Object.entries(agent.params)
    .filter(([key, value]) => /(^|_)lots$/.test(key) && typeof value === "number")
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => (key === "lots" ? `${String(value)}` : `${key.replace(/_lots$/, "")} ${String(value)}`));
  return parts.length > 0 ? parts.join(" · ") : null;
}

const HEARTBEAT_STALE_MS = 60_000;

function AgentCard({ agent, title, clock, tick }: { agent: Agent; title: string; clock: ApiClock; tick: number }) {
  const stop = useStopAgent();
  const live = LIVE_STATES.has(agent.state);
  const now = clock.now(tick);
  const started = Date.parse(agent.started_at);
  const runtime = live
    ? formatDuration((now - started) / 1000)
    : agent.stopped_at
      ? formatDuration((Date.parse(agent.stopped_at) - started) / 1000)
      : "—";
  const heartbeatAge = agent.heartbeat_at ? now - Date.parse(agent.heartbeat_at) : null;
  const stale = live && agent.state === "running" && heartbeatAge !== null && heartbeatAge > HEARTBEAT_STALE_MS;
  const reason = reasonText(agent.reason);
  const lots = lotsSummary(agent);
  const headingId = `agent-${agent.id}-title`;
  return (
    <article
      className={`card agent-card state-${agent.state}`}
      data-testid="agent-card"
      data-agent-id={agent.id}
      data-state={agent.state}
      aria-labelledby={headingId}
    >
      <div className="agent-card-head">
        <h3 id={headingId}>
          {title} <span className="muted">#{agent.id}</span>
        </h3>
        <span className={`badge badge-${agent.state}`} data-testid="agent-state">
          {STATE_LABEL[agent.state]}
        </span>
      </div>
      {reason && (
        <p className={`agent-reason${agent.state === "failed" ? " neg" : ""}`} data-testid="agent-reason">
          {reason}
        </p>
      )}
      <dl className="agent-facts">
        <div>
          <dt>{live ? "Running for" : "Ran for"}</dt>
          <dd className="num" title={`Started ${formatDateTime(agent.started_at)} IST`}>
            {runtime}
          </dd>
        </div>
        <div>
          <dt>P&amp;L today</dt>
          <dd className={`num ${pnlClass(agent.realised_pnl_today)}`} data-testid="agent-pnl">
            {formatPnl(agent.realised_pnl_today)}
          </dd>
        </div>
        <div>
          <dt>Heartbeat</dt>
          <dd
            className={`num${stale ? " neg" : ""}`}
            title={agent.heartbeat_at ? `${formatDateTime(agent.heartbeat_at)} IST` : undefined}
          >
            {heartbeatAge === null ? "none yet" : live ? ago(heartbeatAge) : formatDateTime(agent.heartbeat_at)}
            {stale && " (late)"}
          </dd>
        </div>
        {lots && (
          <div>
            <dt>Lots</dt>
            <dd className="num">{lots}</dd>
          </div>
        )}
      </dl>
      {live && (
        <div className="agent-actions">
          <button
            type="button"
            className="danger"
            data-testid="stop-agent"
            disabled={stop.isPending || agent.state === "stopping"}
            onClick={() => stop.mutate(agent.id)}
            aria-label={`Stop ${title} #${agent.id}`}
          >
            {agent.state === "stopping" || stop.isPending ? "Stopping…" : "Stop"}
          </button>
          {stop.error && (
            <span className="form-error" role="alert">
              Could not stop it: {errorText(stop.error)}
              {stop.error instanceof ApiError && stop.error.retryable && " Try again."}
            </span>
          )}
        </div>
      )}
    </article>
  );
}

export function AgentCards({
  agents,
  strategies,
  clock,
}: {
  agents: readonly Agent[];
  strategies: readonly Strategy[] | undefined;
  clock: ApiClock;
}) {
  const tick = useTick(1000);
  const titles = new Map((strategies ?? []).map((s) => [s.name, s.title]));
  return (
    <div className="agent-cards">
      {agents.map((agent) => (
        <AgentCard
          key={agent.id}
          agent={agent}
          title={titles.get(agent.strategy) ?? agent.strategy}
          clock={clock}
          tick={tick}
        />
      ))}
    </div>
  );
}

/** Agents paused because the broker session ended: reconnecting to Kite resumes them. */
export function PausedAgentsBanner({ agents, strategies }: { agents: readonly Agent[]; strategies: readonly Strategy[] | undefined }) {
  const navigate = useNavigate();
  const paused = agents.filter((a) => a.state === "paused" && a.reason !== null && BROKER_PAUSE_REASONS.has(a.reason));
  if (paused.length === 0) return null;
  const expired = paused.some((a) => a.reason === "broker_token_expired");
  const first = paused[0]!;
  const title = strategies?.find((s) => s.name === first.strategy)?.title ?? first.strategy;
  const who = paused.length === 1 ? `Your ${title} agent is` : `${paused.length} of your agents are`;
  const why = expired ? "your Kite access token has expired" : "your Kite account is disconnected";
  const reconnect = () => {
    rememberNext("/live");
    void navigate(connectPath("broker_expired", "/live"));
  };
  return (
    <div className="banner banner-warn agents-paused" role="alert" data-testid="agents-paused-banner">
      <span>
        {who} paused because {why}. Reconnecting to Kite resumes {paused.length === 1 ? "it" : "them"} where{" "}
        {paused.length === 1 ? "it" : "they"} left off.
      </span>
      <button type="button" onClick={reconnect}>
        Reconnect
      </button>
    </div>
  );
}
