/** Round trips with filters kept in the URL, a summary of what they select, CSV export and a broker sync. */
import { useState, type FormEvent, type ReactNode } from "react";
import { useSearchParams } from "react-router";
import type { PageProps } from "../App";
import { ApiError } from "../api/client";
import {
  downloadTradesCsv,
  filterQuery,
  presetOf,
  presetRange,
  RANGE_PRESETS,
  syncResultText,
  usePnlSummary,
  useSync,
  useTradeFilterChoices,
  useTrades,
  useTradesSummary,
  type TradeFilters,
  type Trade,
  type TradeStatus,
  type TradesSummary,
} from "../api/trading";
import { formatDateTime, formatInr, formatPct, formatPnl, pnlClass, toNumber } from "../lib/format";
import { Empty, ErrorState, errorText, Loading } from "../ui/states";
import { useToast } from "../ui/toast";
import "./Trades.css";

const FILTER_KEYS = ["from", "to", "symbol", "strategy", "exit_reason", "status"] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

/** The filters a URL carries; anything unknown or malformed is ignored rather than sent. */
export function filtersFromParams(params: URLSearchParams): TradeFilters {
  const day = (key: "from" | "to") => {
    const value = params.get(key) ?? "";
    return /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : undefined;
  };
  const status = params.get("status");
  return filterQuery({
    from: day("from"),
    to: day("to"),
    symbol: params.get("symbol") ?? undefined,
    strategy: params.get("strategy") ?? undefined,
    exit_reason: params.get("exit_reason") ?? undefined,
    status: status === "open" || status === "closed" ? (status as TradeStatus) : undefined,
  });
}

function words(value: string): string {
  return value.replace(/_/g, " ");
}

// -- filters --------------------------------------------------------------------------------------------

function ChoiceSelect({
  label,
  name,
  value,
  options,
  allLabel,
  onChange,
  display = (v) => v,
}: {
  label: string;
  name: FilterKey;
  value: string | undefined;
  options: readonly string[] | undefined;
  allLabel: string;
  onChange: (key: FilterKey, value: string) => void;
  display?: (value: string) => string;
}) {
  // A value from the URL that the range no longer holds stays selectable, so the select shows the truth.
  const values = [...(options ?? [])];
  if (value !== undefined && !values.includes(value)) values.unshift(value);
  return (
    <label>
      {label}
      <select name={name} value={value ?? ""} onChange={(e) => onChange(name, e.target.value)}>
        <option value="">{allLabel}</option>
        {values.map((v) => (
          <option key={v} value={v}>
            {display(v)}
          </option>
        ))}
      </select>
    </label>
  );
}

function Filters({
  filters,
  asOf,
  rangeError,
  onChange,
  onRange,
  onClear,
}: {
  filters: TradeFilters;
  asOf: string | undefined;
  rangeError: string | null;
  onChange: (key: FilterKey, value: string) => void;
  onRange: (from: string | undefined, to: string | undefined) => void;
  onClear: () => void;
}) {
  const choices = useTradeFilterChoices({ from: filters.from, to: filters.to }, rangeError === null);
  const active = asOf !== undefined ? presetOf(filters, asOf) : null;
  const allTime = filters.from === undefined && filters.to === undefined;
  const anyFilter = Object.keys(filters).length > 0;
  return (
    <section className="card trades-filters" aria-label="Filters">
      <div className="trades-presets" role="group" aria-label="Date range">
        {RANGE_PRESETS.map((preset) => (
          <button
            key={preset.id}
            type="button"
            className={active === preset.id ? undefined : "ghost"}
            aria-pressed={active === preset.id}
            disabled={asOf === undefined}
            onClick={() => {
              if (asOf === undefined) return;
              const range = presetRange(preset.id, asOf);
              onRange(range.from, range.to);
            }}
          >
            {preset.label}
          </button>
        ))}
        <button
          type="button"
          className={allTime ? undefined : "ghost"}
          aria-pressed={allTime}
          onClick={() => onRange(undefined, undefined)}
        >
          All time
        </button>
      </div>
      <div className="row">
        <label>
          From
          <input
            type="date"
            name="from"
            value={filters.from ?? ""}
            max={asOf}
            onChange={(e) => onChange("from", e.target.value)}
          />
        </label>
        <label>
          To
          <input
            type="date"
            name="to"
            value={filters.to ?? ""}
            onChange={(e) => onChange("to", e.target.value)}
            aria-invalid={rangeError !== null}
            aria-describedby={rangeError !== null ? "range-error" : undefined}
          />
        </label>
        <ChoiceSelect
          label="Symbol"
          name="symbol"
          value={filters.symbol}
          options={choices.data?.symbols}
          allLabel="All symbols"
          onChange={onChange}
        />
        <ChoiceSelect
          label="Strategy"
          name="strategy"
          value={filters.strategy}
          options={choices.data?.strategies}
          allLabel="All strategies"
          onChange={onChange}
          display={words}
        />
        <ChoiceSelect
          label="Exit reason"
          name="exit_reason"
          value={filters.exit_reason}
          options={choices.data?.exit_reasons}
          allLabel="All exit reasons"
          onChange={onChange}
          display={words}
        />
        <label>
          Status
          <select name="status" value={filters.status ?? ""} onChange={(e) => onChange("status", e.target.value)}>
            <option value="">Open and closed</option>
            <option value="open">Open</option>
            <option value="closed">Closed</option>
          </select>
        </label>
        {anyFilter && (
          <button type="button" className="ghost" onClick={onClear}>
            Clear filters
          </button>
        )}
      </div>
      {rangeError !== null && (
        <p className="field-error" id="range-error">
          {rangeError}
        </p>
      )}
      {choices.isError && (
        <p className="form-error">
          The filter choices could not be loaded: {errorText(choices.error)}{" "}
          <button type="button" className="link" onClick={() => void choices.refetch()}>
            Retry
          </button>
        </p>
      )}
    </section>
  );
}

// -- summary, export, sync ------------------------------------------------------------------------------

function Summary({ summary, status }: { summary: TradesSummary; status: TradeStatus | undefined }) {
  return (
    <section aria-label="Summary of the selected trades">
      <div className="tiles">
        <div className="tile">
          <div className="label">Closed trades</div>
          <div className="value" data-testid="summary-count">
            {summary.count}
          </div>
        </div>
        <div className="tile">
          <div className="label">Win rate</div>
          <div className="value" data-testid="summary-win-rate">
            {summary.count > 0 ? formatPct(summary.win_rate) : "—"}
          </div>
          <div className="muted trades-tile-note">
            {summary.wins} won · {summary.losses} lost
          </div>
        </div>
        <div className="tile">
          <div className="label">Profit</div>
          <div className="value pos" data-testid="summary-profit">
            {formatInr(summary.gross_profit)}
          </div>
        </div>
        <div className="tile">
          <div className="label">Loss</div>
          <div className="value neg" data-testid="summary-loss">
            {formatInr(Math.abs(toNumber(summary.gross_loss)))}
          </div>
        </div>
        <div className="tile">
          <div className="label">Net</div>
          <div className={`value ${pnlClass(summary.net)}`} data-testid="summary-net">
            {formatPnl(summary.net)}
          </div>
        </div>
      </div>
      {status === "open" && <p className="muted">Totals count closed trades only: open trades have no P&L yet.</p>}
    </section>
  );
}

function ExportButton({ filters, disabled }: { filters: TradeFilters; disabled: boolean }) {
  const [busy, setBusy] = useState(false);
  const { notify } = useToast();
  const run = async () => {
    setBusy(true);
    try {
      const name = await downloadTradesCsv(filters);
      notify(`Downloaded ${name}.`, "success");
    } catch (error) {
      notify(`The CSV export failed: ${errorText(error)}`, "error");
    } finally {
      setBusy(false);
    }
  };
  return (
    <button type="button" className="ghost" onClick={() => void run()} disabled={disabled || busy}>
      {busy ? "Preparing CSV…" : "Export CSV"}
    </button>
  );
}

function SyncForm({ asOf }: { asOf: string | undefined }) {
  const [which, setWhich] = useState<"today" | "day">("today");
  const [day, setDay] = useState("");
  const [dayError, setDayError] = useState<string | null>(null);
  const sync = useSync();
  const { notify } = useToast();

  const send = () => {
    let chosen: string | null = null;
    if (which === "day") {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) {
        setDayError("Pick the day to sync.");
        return;
      }
      if (asOf !== undefined && day > asOf) {
        setDayError(`Pick a day up to today (${asOf}).`);
        return;
      }
      if (day < "2000-01-01") {
        setDayError("Pick a day from 2000 on.");
        return;
      }
      chosen = day;
    }
    setDayError(null);
    sync.mutate(chosen, {
      onSuccess: (result) => notify(`Synced: ${syncResultText(result)}.`, "success"),
      onError: (error) => {
        const field = error instanceof ApiError ? error.fieldErrors.find((f) => f.field.startsWith("day")) : undefined;
        if (field !== undefined) setDayError(field.message);
      },
    });
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    send();
  };
  const error = sync.error;
  const formLevel = error !== null && !(error instanceof ApiError && error.fieldErrors.length > 0);
  return (
    <form className="trades-sync" onSubmit={submit} noValidate aria-busy={sync.isPending}>
      <fieldset>
        <legend>Sync from broker</legend>
        <div className="row">
          <label className="inline">
            <input type="radio" name="sync-day" checked={which === "today"} onChange={() => setWhich("today")} />
            Today{asOf !== undefined ? ` (${asOf})` : ""}
          </label>
          <label className="inline">
            <input type="radio" name="sync-day" checked={which === "day"} onChange={() => setWhich("day")} />
            Another day
          </label>
          {which === "day" && (
            <label>
              Day
              <input
                type="date"
                name="day"
                value={day}
                max={asOf}
                onChange={(e) => setDay(e.target.value)}
                aria-invalid={dayError !== null}
                aria-describedby={dayError !== null ? "sync-day-error" : undefined}
              />
            </label>
          )}
          <button type="submit" disabled={sync.isPending}>
            {sync.isPending ? (
              <>
                <span className="spinner trades-spinner" aria-hidden="true" /> Syncing…
              </>
            ) : (
              "Sync from broker"
            )}
          </button>
        </div>
        {dayError !== null && (
          <p className="field-error" id="sync-day-error">
            {dayError}
          </p>
        )}
        {sync.isSuccess && (
          <p role="status" data-testid="sync-result">
            {syncResultText(sync.data)}
          </p>
        )}
        {formLevel && (
          <p className="form-error" role="alert">
            The sync failed: {errorText(error)}{" "}
            <button type="button" className="link" onClick={send}>
              Try again
            </button>
          </p>
        )}
      </fieldset>
    </form>
  );
}

// -- table ----------------------------------------------------------------------------------------------

function TradeRow({ trade }: { trade: Trade }) {
  return (
    <tr>
      <td>{trade.day}</td>
      <td>
        <strong>{trade.tradingsymbol}</strong> <span className="muted">{trade.exchange}</span>
      </td>
      <td>{trade.direction === "LONG" ? "Long" : "Short"}</td>
      <td className="num">{trade.quantity}</td>
      <td className="num">
        {formatDateTime(trade.entry_at)}
        <br />
        {formatInr(trade.entry_price)}
      </td>
      <td className="num">
        {formatDateTime(trade.exit_at)}
        <br />
        {trade.exit_price === null ? "—" : formatInr(trade.exit_price)}
      </td>
      <td>{trade.exit_reason ? words(trade.exit_reason) : "—"}</td>
      <td>{trade.strategy ? words(trade.strategy) : <span className="muted">manual</span>}</td>
      <td className={`num ${trade.realised_pnl === null ? "" : pnlClass(trade.realised_pnl)}`}>
        {trade.realised_pnl === null ? "—" : formatPnl(trade.realised_pnl)}
      </td>
      <td>
        <span className={`badge ${trade.status === "open" ? "badge-running" : ""}`}>{trade.status}</span>
      </td>
    </tr>
  );
}

function TradesTable({
  filters,
  enabled,
  emptyText,
}: {
  filters: TradeFilters;
  enabled: boolean;
  emptyText: ReactNode;
}) {
  const trades = useTrades(filters, enabled);
  if (!enabled) return null;
  if (trades.isPending) return <Loading label="Loading trades…" />;
  if (trades.data === undefined) {
    return <ErrorState title="Could not load trades." error={trades.error} onRetry={() => void trades.refetch()} />;
  }
  const rows = trades.data.pages.flatMap((page) => page.items);
  if (rows.length === 0 && !trades.isFetching) return <Empty>{emptyText}</Empty>;
  return (
    <section aria-label="Trades">
      {trades.isError && !trades.isFetchNextPageError && (
        <ErrorState
          title="Could not refresh trades."
          error={trades.error}
          onRetry={() => void trades.refetch()}
        />
      )}
      <div className={`table-wrap${trades.isPlaceholderData ? " refreshing" : ""}`}>
        <table aria-label="Trades" data-testid="trades-table">
          <thead>
            <tr>
              <th scope="col">Day</th>
              <th scope="col">Symbol</th>
              <th scope="col">Direction</th>
              <th scope="col" className="num">
                Qty
              </th>
              <th scope="col" className="num">
                Entry
              </th>
              <th scope="col" className="num">
                Exit
              </th>
              <th scope="col">Exit reason</th>
              <th scope="col">Strategy</th>
              <th scope="col" className="num">
                Realised P&L
              </th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((trade) => (
              <TradeRow key={trade.id} trade={trade} />
            ))}
          </tbody>
        </table>
      </div>
      <div className="row trades-more">
        <span className="muted" data-testid="trades-shown">
          Showing {rows.length} {rows.length === 1 ? "trade" : "trades"}
        </span>
        {trades.hasNextPage && (
          <button
            type="button"
            className="ghost"
            onClick={() => void trades.fetchNextPage()}
            disabled={trades.isFetchingNextPage}
          >
            {trades.isFetchingNextPage ? "Loading…" : "Load more"}
          </button>
        )}
      </div>
      {trades.isFetchNextPageError && (
        <ErrorState
          title="Could not load more trades."
          error={trades.error}
          onRetry={() => void trades.fetchNextPage()}
        />
      )}
    </section>
  );
}

export default function Trades(_props: PageProps) {
  const [params, setParams] = useSearchParams();
  const filters = filtersFromParams(params);
  const pnl = usePnlSummary();
  const asOf = pnl.data?.as_of;
  const rangeError =
    filters.from !== undefined && filters.to !== undefined && filters.from > filters.to
      ? "The end date is before the start date."
      : null;
  const enabled = rangeError === null;
  const summary = useTradesSummary(filters, enabled);

  const update = (changes: Partial<Record<FilterKey, string | undefined>>) =>
    setParams((current) => {
      const next = new URLSearchParams(current);
      for (const [key, value] of Object.entries(changes)) {
        if (value) next.set(key, value);
        else next.delete(key);
      }
      return next;
    });
  const anyFilter = Object.keys(filters).length > 0;
  const clear = () => setParams(new URLSearchParams());

  return (
    <div className="trades-page">
      <h1>Trades</h1>
      <Filters
        filters={filters}
        asOf={asOf}
        rangeError={rangeError}
        onChange={(key, value) => update({ [key]: value })}
        onRange={(from, to) => update({ from, to })}
        onClear={clear}
      />
      <div className="row trades-actions">
        <SyncForm asOf={asOf} />
        <div className="spacer" />
        <ExportButton filters={filters} disabled={!enabled} />
      </div>
      {enabled &&
        (summary.isPending ? (
          <Loading label="Loading the summary…" />
        ) : summary.data === undefined ? (
          <ErrorState title="Could not load the summary." error={summary.error} onRetry={() => void summary.refetch()} />
        ) : (
          <Summary summary={summary.data} status={filters.status} />
        ))}
      <TradesTable
        filters={filters}
        enabled={enabled}
        emptyText={
          anyFilter ? (
            <>
              No trades match these filters.{" "}
              <button type="button" className="link" onClick={clear}>
                Clear filters
              </button>
            </>
          ) : (
            "No trades yet. Sync from broker to pull today's fills."
          )
        }
      />
    </div>
  );
}
