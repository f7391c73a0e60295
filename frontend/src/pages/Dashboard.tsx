/** The overview: realised P&L by period, the daily loss limit, a P&L calendar and chart, running agents. */
import { useQueryClient, type UseQueryResult } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { Link, useSearchParams } from "react-router";
import type { PageProps } from "../App";
import { agentKeys, LIVE_STATES, useAgents, useStrategies, type Agent } from "../api/agents";
import { ApiError } from "../api/client";
import { useLiveMessages } from "../api/events";
import {
  invalidateTradingFigures,
  presetRange,
  RANGE_PRESETS,
  useCumulativePnl,
  useDailyStats,
  usePnlSummary,
  useRisk,
  useSetDailyLossLimit,
  type DailyStats,
  type PnlSummary,
  type RangePreset,
  type Risk,
} from "../api/trading";
import { formatInr, formatPct, formatPnl, pnlClass, toNumber } from "../lib/format";
import { Heatmap } from "../ui/Heatmap";
import { Empty, ErrorState, errorText, Loading, QueryView } from "../ui/states";
import { useToast } from "../ui/toast";
import "./Dashboard.css";

// The chart library is the page's largest part: start loading it with the page, alongside the figures.
const loadChart = () => import("../ui/charts/CumulativePnlChart");
const CumulativePnlChart = lazy(loadChart);
void loadChart();

const PERIODS: { key: Exclude<keyof PnlSummary, "as_of">; label: string }[] = [
  { key: "day", label: "Today" },
  { key: "week", label: "This week" },
  { key: "month", label: "This month" },
  { key: "year", label: "This year" },
  { key: "all_time", label: "All time" },
];

/** The ranges the calendar and the chart offer; both follow the one chosen (kept in the URL as `range`). */
export const DASHBOARD_PRESETS = RANGE_PRESETS.filter((p) => p.id !== "today");
const DEFAULT_PRESET: RangePreset = "30d";

/** New fills change every realised figure: refetch them (once per burst), and keep the agent list current. */
function useLiveRefresh() {
  const queryClient = useQueryClient();
  const timer = useRef<number | undefined>(undefined);
  useLiveMessages((message) => {
    if (message.kind === "agent") {
      const agent = message.data;
      queryClient.setQueryData<Agent[]>(agentKeys.list, (all) =>
        all === undefined
          ? all
          : all.some((a) => a.id === agent.id)
            ? all.map((a) => (a.id === agent.id ? agent : a))
            : [agent, ...all],
      );
      return;
    }
    if (message.kind === "gap") void queryClient.invalidateQueries({ queryKey: agentKeys.list });
    if (message.kind === "gap" || message.data.kind === "fill") {
      window.clearTimeout(timer.current);
      timer.current = window.setTimeout(() => void invalidateTradingFigures(queryClient), 300);
    }
  });
  useEffect(() => () => window.clearTimeout(timer.current), []);
}

function PnlTiles({ summary }: { summary: UseQueryResult<PnlSummary> }) {
  if (summary.isPending) return <Loading label="Loading P&L…" />;
  if (summary.data === undefined) {
    return <ErrorState title="Could not load P&L." error={summary.error} onRetry={() => void summary.refetch()} />;
  }
  const data = summary.data;
  return (
    <section aria-labelledby="pnl-heading">
      <h2 id="pnl-heading" className="visually-hidden">
        Realised P&L
      </h2>
      <div className="tiles">
        {PERIODS.map(({ key, label }) => (
          <div className="tile" key={key}>
            <div className="label">{label}</div>
            <div className={`value ${pnlClass(data[key])}`} data-testid={`pnl-${key}`}>
              {formatPnl(data[key])}
            </div>
          </div>
        ))}
      </div>
    </section>
  );
}

// -- daily loss limit -----------------------------------------------------------------------------------

/** What the limit input accepts: rupees above zero with at most two decimals (commas allowed). */
export function validateLimit(text: string): { value: string } | { error: string } {
  const cleaned = text.trim().replace(/,/g, "");
  if (cleaned === "") return { error: "Enter the most you are willing to lose in a day." };
  if (!/^\d+(\.\d{1,2})?$/.test(cleaned)) return { error: "Enter an amount in rupees, e.g. 5000 or 5000.50." };
  const n = Number(cleaned);
  if (n <= 0) return { error: "The limit must be more than ₹0." };
  if (n > 1_000_000_000) return { error: "The limit can be at most ₹1,00,00,00,000." };
  return { value: cleaned };
}

function RiskMeter({ risk }: { risk: Risk }) {
  const used = toNumber(risk.daily_loss_used);
  if (risk.daily_loss_limit === null) {
    return (
      <>
        <p data-testid="risk-none">No daily loss limit set.</p>
        <p className="muted">Loss so far today: {formatInr(used)}</p>
      </>
    );
  }
  const limit = toNumber(risk.daily_loss_limit);
  const share = limit > 0 ? used / limit : 1;
  const over = risk.trading_blocked || share >= 1;
  return (
    <>
      <p data-testid="risk-used">
        {formatInr(used)} of {formatInr(limit)} used ({formatPct(share)})
      </p>
      <div
        className={over ? "bar over" : "bar"}
        role="progressbar"
        aria-label="Daily loss limit used"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(Math.min(1, share) * 100)}
      >
        <span style={{ width: `${Math.min(100, share * 100)}%` }} />
      </div>
    </>
  );
}

function LimitForm({ current }: { current: Risk["daily_loss_limit"] }) {
  const [text, setText] = useState(current === null ? "" : String(toNumber(current)));
  const [fieldError, setFieldError] = useState<string | null>(null);
  const [last, setLast] = useState<string | null | undefined>(undefined);
  const save = useSetDailyLossLimit();
  const { notify } = useToast();

  const send = (limit: string | null) => {
    setLast(limit);
    setFieldError(null);
    save.mutate(limit, {
      onSuccess: () => notify(limit === null ? "Daily loss limit removed." : "Daily loss limit saved.", "success"),
      onError: (error) => {
        const mine = error instanceof ApiError ? error.fieldErrors.find((f) => f.field.startsWith("daily_loss_limit")) : undefined;
        if (mine !== undefined) setFieldError(mine.message);
      },
    });
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const checked = validateLimit(text);
    if ("error" in checked) {
      setFieldError(checked.error);
      return;
    }
    send(checked.value);
  };
  const error = save.error;
  const formLevel = error !== null && !(error instanceof ApiError && error.fieldErrors.length > 0);
  return (
    <form className="limit-form" onSubmit={submit} noValidate>
      <div className="row">
        <label>
          New limit (₹)
          <input
            name="daily_loss_limit"
            inputMode="decimal"
            autoComplete="off"
            value={text}
            onChange={(e) => setText(e.target.value)}
            aria-invalid={fieldError !== null}
            aria-describedby={fieldError !== null ? "limit-error" : undefined}
          />
        </label>
        <button type="submit" disabled={save.isPending}>
          {save.isPending && last !== null ? "Saving…" : "Save limit"}
        </button>
        {current !== null && (
          <button type="button" className="ghost" disabled={save.isPending} onClick={() => send(null)}>
            Remove limit
          </button>
        )}
      </div>
      {fieldError !== null && (
        <p className="field-error" id="limit-error">
          {fieldError}
        </p>
      )}
      {formLevel && (
        <p className="form-error" role="alert">
          {errorText(error)}{" "}
          {last !== undefined && (
            <button type="button" className="link" onClick={() => send(last)}>
              Try again
            </button>
          )}
        </p>
      )}
    </form>
  );
}

function RiskCard() {
  const risk = useRisk();
  return (
    <section className="card" aria-labelledby="risk-heading">
      <h2 id="risk-heading">Daily loss limit</h2>
      <QueryView query={risk} loadingLabel="Loading the limit…">
        {(data) => (
          <>
            {data.trading_blocked && (
              <p className="blocked" role="alert" data-testid="risk-blocked">
                Trading is blocked for today: the daily loss limit is reached.
              </p>
            )}
            <RiskMeter risk={data} />
            <LimitForm current={data.daily_loss_limit} />
          </>
        )}
      </QueryView>
    </section>
  );
}

// -- running agents -------------------------------------------------------------------------------------

function AgentsCard() {
  const agents = useAgents();
  // Titles as the strategies list gives them ("SMA crossover"); the name until it has loaded.
  const strategies = useStrategies();
  const strategyName = (name: string) =>
    strategies.data?.find((s) => s.name === name)?.title ?? name.replace(/_/g, " ");
  const live = (all: Agent[]) => all.filter((a) => LIVE_STATES.has(a.state));
  return (
    <section className="card" aria-labelledby="agents-heading">
      <div className="card-head">
        <h2 id="agents-heading">Running agents</h2>
        <Link to="/live">Live trader</Link>
      </div>
      <QueryView
        query={agents}
        loadingLabel="Loading agents…"
        isEmpty={(all) => live(all).length === 0}
        empty={
          <span>
            No agents are running. <Link to="/live">Start one on the Live trader page</Link>.
          </span>
        }
      >
        {(all) => (
          <ul className="agent-list">
            {live(all).map((agent) => (
              <li key={agent.id} data-testid="running-agent">
                <span className="agent-name">{strategyName(agent.strategy)}</span>
                <span className={`badge badge-${agent.state}`}>{agent.state}</span>
                {agent.reason && <span className="muted agent-reason">{agent.reason}</span>}
                <span className={`num agent-pnl ${pnlClass(agent.realised_pnl_today)}`}>
                  <span className="visually-hidden">Today: </span>
                  {formatPnl(agent.realised_pnl_today)}
                </span>
              </li>
            ))}
          </ul>
        )}
      </QueryView>
    </section>
  );
}

// -- range: calendar, summary, chart --------------------------------------------------------------------

export interface RangeTotals {
  trades: number;
  wins: number;
  losses: number;
  net: number;
  bestDay: DailyStats | null;
  worstDay: DailyStats | null;
}

export function rangeTotals(days: readonly DailyStats[]): RangeTotals {
  let trades = 0;
  let wins = 0;
  let losses = 0;
  let paise = 0; // summed in paise so a long range does not gather floating-point dust
  let bestDay: DailyStats | null = null;
  let worstDay: DailyStats | null = null;
  for (const d of days) {
    trades += d.trades;
    wins += d.wins;
    losses += d.losses;
    const net = toNumber(d.net);
    paise += Math.round(net * 100);
    if (bestDay === null || net > toNumber(bestDay.net)) bestDay = d;
    if (worstDay === null || net < toNumber(worstDay.net)) worstDay = d;
  }
  return { trades, wins, losses, net: paise / 100, bestDay, worstDay };
}

function PresetTabs({ value, onChange }: { value: RangePreset; onChange: (p: RangePreset) => void }) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const onKeyDown = (event: KeyboardEvent, index: number) => {
    const last = DASHBOARD_PRESETS.length - 1;
    const next =
      event.key === "ArrowRight" ? (index === last ? 0 : index + 1)
      : event.key === "ArrowLeft" ? (index === 0 ? last : index - 1)
      : event.key === "Home" ? 0
      : event.key === "End" ? last
      : null;
    if (next === null) return;
    event.preventDefault();
    const preset = DASHBOARD_PRESETS[next];
    if (preset === undefined) return;
    onChange(preset.id);
    refs.current[next]?.focus();
  };
  return (
    <div className="tabs" role="tablist" aria-label="Range">
      {DASHBOARD_PRESETS.map((preset, index) => (
        <button
          key={preset.id}
          ref={(el) => {
            refs.current[index] = el;
          }}
          type="button"
          role="tab"
          id={`range-tab-${preset.id}`}
          aria-selected={preset.id === value}
          aria-controls="range-panel"
          tabIndex={preset.id === value ? 0 : -1}
          onClick={() => onChange(preset.id)}
          onKeyDown={(e) => onKeyDown(e, index)}
        >
          {preset.label}
        </button>
      ))}
    </div>
  );
}

function RangeSummary({ days }: { days: readonly DailyStats[] }) {
  const totals = rangeTotals(days);
  return (
    <dl className="range-summary">
      <div>
        <dt>Trades</dt>
        <dd data-testid="range-trades">{totals.trades}</dd>
      </div>
      <div>
        <dt>Win rate</dt>
        <dd data-testid="range-win-rate">{totals.trades > 0 ? formatPct(totals.wins / totals.trades) : "—"}</dd>
      </div>
      <div>
        <dt>Net</dt>
        <dd className={pnlClass(totals.net)} data-testid="range-net">
          {formatPnl(totals.net)}
        </dd>
      </div>
      <div>
        <dt>Best day</dt>
        <dd className={totals.bestDay ? pnlClass(totals.bestDay.net) : undefined}>
          {totals.bestDay ? `${formatPnl(totals.bestDay.net)} (${totals.bestDay.day})` : "—"}
        </dd>
      </div>
      <div>
        <dt>Worst day</dt>
        <dd className={totals.worstDay ? pnlClass(totals.worstDay.net) : undefined}>
          {totals.worstDay ? `${formatPnl(totals.worstDay.net)} (${totals.worstDay.day})` : "—"}
        </dd>
      </div>
    </dl>
  );
}

function isPreset(value: string | null): value is RangePreset {
  return DASHBOARD_PRESETS.some((p) => p.id === value);
}

function RangeSection({ asOf }: { asOf: string }) {
  const [params, setParams] = useSearchParams();
  const requested = params.get("range");
  const preset = isPreset(requested) ? requested : DEFAULT_PRESET;
  const range = presetRange(preset, asOf);
  const stats = useDailyStats(range);
  const cumulative = useCumulativePnl(range);
  const choose = (next: RangePreset) =>
    setParams(
      (p) => {
        const copy = new URLSearchParams(p);
        if (next === DEFAULT_PRESET) copy.delete("range");
        else copy.set("range", next);
        return copy;
      },
      { replace: true },
    );
  const label = DASHBOARD_PRESETS.find((p) => p.id === preset)?.label ?? "";
  return (
    <section aria-labelledby="range-heading" className="range-section">
      <div className="card-head">
        <h2 id="range-heading">By day</h2>
        <span className="muted">
          {range.from} to {range.to} (IST)
        </span>
      </div>
      <PresetTabs value={preset} onChange={choose} />
      <div
        id="range-panel"
        role="tabpanel"
        aria-labelledby={`range-tab-${preset}`}
        className={`grid range-grid${preset === "fy" || preset === "last_fy" ? " range-grid-wide" : ""}`}
      >
        <div className="card">
          <h3>Daily P&L</h3>
          <QueryView query={stats} loadingLabel="Loading daily figures…">
            {(days) => (
              <div className={stats.isPlaceholderData ? "refreshing" : undefined}>
                <RangeSummary days={days} />
                <Heatmap
                  from={range.from}
                  to={range.to}
                  days={days}
                  caption={`Daily net P&L, ${label.toLowerCase()}: ${range.from} to ${range.to}`}
                  hrefFor={(day) => `/trades?from=${day}&to=${day}`}
                />
              </div>
            )}
          </QueryView>
        </div>
        <div className="card">
          <h3>Cumulative P&L</h3>
          <QueryView
            query={cumulative}
            loadingLabel="Loading the chart…"
            isEmpty={(points) => points.length === 0}
            empty="No closed trades in this range."
          >
            {(points) => (
              <Suspense fallback={<Loading label="Loading the chart…" />}>
                <CumulativePnlChart points={points} />
              </Suspense>
            )}
          </QueryView>
        </div>
      </div>
    </section>
  );
}

export default function Dashboard(_props: PageProps) {
  const summary = usePnlSummary();
  useLiveRefresh();
  return (
    <div className="dashboard">
      <div className="card-head">
        <h1>Dashboard</h1>
        {summary.data && <span className="muted">As of {summary.data.as_of} (IST)</span>}
      </div>
      <PnlTiles summary={summary} />
      <div className="grid dash-cards">
        <RiskCard />
        <AgentsCard />
      </div>
      {summary.data !== undefined ? (
        <RangeSection asOf={summary.data.as_of} />
      ) : summary.isPending ? null : (
        <Empty>The calendar and chart need today's date from the API; retry loading P&L above.</Empty>
      )}
    </div>
  );
}
