/** Live trader: start a strategy's agent, watch and stop this user's agents, the kill switch, live events. */
import { useQueryClient } from "@tanstack/react-query";
import { useRef, useState, type FormEvent } from "react";
import { Link } from "react-router";
import type { PageProps } from "../App";
import {
  agentKeys,
  LIVE_STATES,
  putAgent,
  useAgents,
  useStartAgent,
  useStopAll,
  useStrategies,
  useStrategyParams,
  type Agent,
  type Strategy,
} from "../api/agents";
import { ApiError } from "../api/client";
import { useLiveMessages } from "../api/events";
import { fieldLabel, resolveSchema, type JsonSchema } from "../ui/SchemaForm";
import { ConfirmDialog } from "../ui/ConfirmDialog";
import { Empty, ErrorState, errorText, Loading } from "../ui/states";
import { useToast } from "../ui/toast";
import { AgentCards, ApiClock, orderAgents, PausedAgentsBanner } from "./LiveTraderAgents";
import { EventConsole } from "./LiveTraderConsole";
import "./LiveTrader.css";

/** A strategy's lots fields (`lots`, `call_lots`, `put_lots`…) with their schema. */
export function lotsFields(strategy: Strategy): { name: string; schema: JsonSchema }[] {
  const root = strategy.params_schema as JsonSchema;
  return Object.entries(root.properties ?? {})
    .filter(([name]) => /(^|_)lots$/.test(name))
    .map(([name, schema]) => ({ name, schema: resolveSchema(schema, root) }));
}

/** Why a lots entry cannot be sent, or null: a whole number from 1 (or the schema's minimum) to its maximum. */
export function lotsError(text: string, schema: JsonSchema): string | null {
  const trimmed = text.trim();
  if (trimmed === "") return "Enter the number of lots";
  const n = Number(trimmed);
  if (!Number.isFinite(n) || !Number.isInteger(n)) return "Enter a whole number of lots";
  const min = Math.max(1, schema.minimum ?? 1, schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : 1);
  if (n < min) return min === 1 ? "At least 1 lot" : `At least ${min} lots`;
  const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : undefined);
  if (max !== undefined && n > max) return `At most ${max} lots`;
  return null;
}

function StartForm({ strategies, agents }: { strategies: Strategy[]; agents: readonly Agent[] }) {
  const { notify } = useToast();
  const [picked, setPicked] = useState<string | null>(null);
  const strategy = strategies.find((s) => s.name === picked) ?? strategies[0];
  const name = strategy?.name ?? null;
  const params = useStrategyParams(name);
  const start = useStartAgent();
  const [drafts, setDrafts] = useState<Record<string, Record<string, string>>>({});
  const [showErrors, setShowErrors] = useState(false);
  const inputs = useRef<Record<string, HTMLInputElement | null>>({});
  if (strategy === undefined || name === null) return <Empty>No strategies are available.</Empty>;

  const fields = lotsFields(strategy);
  const draft = drafts[name] ?? {};
  const valueOf = (field: string): string => {
    if (draft[field] !== undefined) return draft[field];
    const known = params.data?.[field] ?? strategy.defaults[field];
    return typeof known === "number" ? String(known) : "1";
  };
  const clientErrors = Object.fromEntries(
    fields.map((f) => [f.name, lotsError(valueOf(f.name), f.schema)] as const).filter(([, e]) => e !== null),
  ) as Record<string, string>;
  const apiError = start.error instanceof ApiError ? start.error : null;
  const sentFields = new Set(fields.map((f) => f.name));
  const apiFieldErrors = Object.fromEntries(
    (apiError?.fieldErrors ?? []).filter((e) => sentFields.has(e.field)).map((e) => [e.field, e.message]),
  );
  const otherFieldErrors = (apiError?.fieldErrors ?? []).filter((e) => !sentFields.has(e.field));
  const running = agents.find((a) => a.strategy === name && LIVE_STATES.has(a.state));

  const setLots = (field: string, text: string) => {
    setDrafts((all) => ({ ...all, [name]: { ...(all[name] ?? {}), [field]: text } }));
    if (start.error) start.reset();
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setShowErrors(true);
    const firstBad = fields.find((f) => clientErrors[f.name] !== undefined);
    if (firstBad !== undefined) {
      inputs.current[firstBad.name]?.focus();
      return;
    }
    const lots = Object.fromEntries(fields.map((f) => [f.name, Number(valueOf(f.name))]));
    start.mutate(
      { strategy: name, lots },
      {
        onSuccess: (agent) => {
          notify(`Started ${strategy.title} (#${agent.id}).`, "success");
          setShowErrors(false);
          setDrafts((all) => {
            const { [name]: _done, ...rest } = all;
            return rest;
          });
        },
      },
    );
  };

  return (
    <form className="start-form" onSubmit={submit} noValidate aria-labelledby="start-heading">
      <div className="strategy-picker">
        <label htmlFor="start-strategy">
          Strategy
          <select
            id="start-strategy"
            name="strategy"
            value={name}
            aria-describedby="start-strategy-description"
            onChange={(e) => {
              setPicked(e.target.value);
              setShowErrors(false);
              start.reset();
            }}
          >
            {strategies.map((s) => (
              <option key={s.name} value={s.name}>
                {s.title}
              </option>
            ))}
          </select>
        </label>
        <p id="start-strategy-description" className="strategy-description">
          {strategy.description}
        </p>
      </div>
      <div className="lots-row">
        {fields.map((f) => {
          const id = `start-${f.name}`;
          const error = apiFieldErrors[f.name] ?? (showErrors ? clientErrors[f.name] : undefined);
          const value = valueOf(f.name);
          const valid = clientErrors[f.name] === undefined;
          const units =
            strategy.lot_size === null
              ? "Lot size not known yet (the broker could not be asked)."
              : valid
                ? `= ${(Number(value) * strategy.lot_size).toLocaleString("en-IN")} units (lot size ${strategy.lot_size})`
                : `Lot size ${strategy.lot_size}`;
          return (
            <div key={f.name} className="lots-field">
              <label htmlFor={id}>{fieldLabel(f.name, f.schema)}</label>
              <input
                ref={(el) => {
                  inputs.current[f.name] = el;
                }}
                id={id}
                name={f.name}
                type="number"
                inputMode="numeric"
                min={Math.max(1, f.schema.minimum ?? 1)}
                max={f.schema.maximum}
                step={1}
                value={value}
                aria-invalid={error !== undefined || undefined}
                aria-describedby={`${id}-units${error ? ` ${id}-error` : ""}`}
                onChange={(e) => setLots(f.name, e.target.value)}
              />
              <span id={`${id}-units`} className="hint" data-testid={`units-${f.name}`}>
                {units}
              </span>
              {error && (
                <span id={`${id}-error`} className="field-error">
                  {error}
                </span>
              )}
            </div>
          );
        })}
      </div>
      {params.error && (
        <p className="form-error">
          Your saved parameters could not be read ({errorText(params.error)}).{" "}
          <button type="button" className="link" onClick={() => void params.refetch()}>
            Retry
          </button>
        </p>
      )}
      {start.error && Object.keys(apiFieldErrors).length === 0 && (
        <div className="form-error" role="alert">
          {otherFieldErrors.length > 0 ? (
            <>
              Your saved parameters are not accepted:{" "}
              {otherFieldErrors.map((e) => `${e.field}: ${e.message}`).join("; ")}.{" "}
              <Link to={`/parameters?strategy=${encodeURIComponent(name)}`}>Fix them on the Parameters page</Link>.
            </>
          ) : (
            <>
              {errorText(start.error)}
              {apiError?.retryable && " You can try again."}
            </>
          )}
        </div>
      )}
      <div className="row">
        <button type="submit" data-testid="start-agent" disabled={start.isPending || running !== undefined}>
          {start.isPending ? "Starting…" : start.error && apiError?.retryable ? "Try again" : `Start ${strategy.title}`}
        </button>
        {running && (
          <span className="muted">
            Already running (#{running.id}); stop it to start again with other lots.
          </span>
        )}
        <Link className="muted" to={`/parameters?strategy=${encodeURIComponent(name)}`}>
          Edit its other parameters
        </Link>
      </div>
    </form>
  );
}

function KillSwitch({ anyLive }: { anyLive: boolean }) {
  const { notify } = useToast();
  const [open, setOpen] = useState(false);
  const stopAll = useStopAll();
  const confirm = () =>
    stopAll.mutate(undefined, {
      onSuccess: (result) => {
        setOpen(false);
        notify(
          `Kill switch: ${result.stopped} agent${result.stopped === 1 ? "" : "s"} stopped, ` +
            `${result.orders_cancelled} order${result.orders_cancelled === 1 ? "" : "s"} cancelled, ` +
            `${result.positions_closed} position${result.positions_closed === 1 ? "" : "s"} closed.`,
          "success",
        );
      },
    });
  return (
    <>
      <button
        type="button"
        className="danger"
        data-testid="stop-all"
        aria-haspopup="dialog"
        title={anyLive ? undefined : "No agent is running"}
        onClick={() => {
          stopAll.reset();
          setOpen(true);
        }}
      >
        Stop all
      </button>
      <ConfirmDialog
        open={open}
        title="Stop every agent?"
        confirmLabel={stopAll.isPending ? "Stopping…" : stopAll.error ? "Try again" : "Stop all agents"}
        cancelLabel="Keep them running"
        danger
        pending={stopAll.isPending}
        error={stopAll.error ? `The kill switch failed: ${errorText(stopAll.error)}` : undefined}
        onConfirm={confirm}
        onCancel={() => setOpen(false)}
      >
        <p>
          Every agent of yours stops now: their open orders are cancelled and their positions squared off at market.
        </p>
      </ConfirmDialog>
    </>
  );
}

export default function LiveTrader(_props: PageProps) {
  const queryClient = useQueryClient();
  const strategies = useStrategies();
  const agents = useAgents({ refreshWhileLiveMs: 15_000 });
  const [clock] = useState(() => new ApiClock());
  const seenUpdate = useRef(0);
  if (agents.data !== undefined && agents.dataUpdatedAt !== seenUpdate.current) {
    seenUpdate.current = agents.dataUpdatedAt;
    for (const agent of agents.data) clock.observeAgent(agent, agents.dataUpdatedAt);
  }

  useLiveMessages((message) => {
    if (message.kind === "agent") {
      clock.observeAgent(message.data, Date.now(), true);
      putAgent(queryClient, message.data);
    } else if (message.kind === "gap") {
      void queryClient.invalidateQueries({ queryKey: agentKeys.list });
    }
  });

  const shown = orderAgents(agents.data ?? []);
  const anyLive = shown.some((a) => LIVE_STATES.has(a.state));

  return (
    <div className="live-trader">
      <h1>Live trader</h1>
      <PausedAgentsBanner agents={agents.data ?? []} strategies={strategies.data} />
      <div className="live-layout">
        <section className="card" aria-labelledby="start-heading">
          <h2 id="start-heading">Start an agent</h2>
          {strategies.isPending ? (
            <Loading label="Loading strategies…" />
          ) : strategies.error ? (
            <ErrorState error={strategies.error} onRetry={() => void strategies.refetch()} />
          ) : (
            <StartForm strategies={strategies.data} agents={agents.data ?? []} />
          )}
        </section>
        <section className="agents-section" aria-labelledby="agents-heading">
          <div className="row agents-head">
            <h2 id="agents-heading">Your agents</h2>
            <span className="spacer" />
            <KillSwitch anyLive={anyLive} />
          </div>
          {agents.isPending ? (
            <Loading label="Loading your agents…" />
          ) : agents.error ? (
            <ErrorState error={agents.error} onRetry={() => void agents.refetch()} />
          ) : shown.length === 0 ? (
            <Empty>No agents yet. Pick a strategy and start one.</Empty>
          ) : (
            <AgentCards agents={shown} strategies={strategies.data} clock={clock} />
          )}
        </section>
      </div>
      <section className="card" aria-labelledby="events-heading">
        <h2 id="events-heading">Events</h2>
        <EventConsole agents={shown} strategies={strategies.data} onEvent={(e) => clock.observe(e.at)} />
      </section>
    </div>
  );
}
