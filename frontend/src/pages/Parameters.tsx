/** Parameters: a strategy's settings as a form built from its schema, saved whole; its change history below. */
import { useEffect, useRef, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import type { PageProps } from "../App";
import { useSaveParams, useStrategies, useStrategyParams, type ParamValues, type Strategy } from "../api/agents";
import { ApiError } from "../api/client";
import {
  deepEqual,
  leafPaths,
  SchemaForm,
  validateValues,
  type FieldErrors,
  type FormValues,
  type JsonSchema,
} from "../ui/SchemaForm";
import { ConfirmDialog } from "../ui/ConfirmDialog";
import { Empty, ErrorState, errorText, Loading } from "../ui/states";
import { useToast } from "../ui/toast";
import { ParamsHistory } from "./ParametersHistory";
import "./Parameters.css";

export const SAVED_TEXT = "Saved — running agents use it within a second";

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function ParamsEditor({
  strategy,
  draft,
  setDraft,
}: {
  strategy: Strategy;
  draft: FormValues | undefined;
  setDraft: (values: FormValues | undefined) => void;
}) {
  const { notify } = useToast();
  const params = useStrategyParams(strategy.name);
  const save = useSaveParams(strategy.name);
  const schema = strategy.params_schema as JsonSchema;
  const [touched, setTouched] = useState<ReadonlySet<string>>(new Set());
  const [showAll, setShowAll] = useState(false);
  const [serverErrors, setServerErrors] = useState<FieldErrors>({});
  const [formErrors, setFormErrors] = useState<string[]>([]);
  const [confirmReset, setConfirmReset] = useState(false);
  const form = useRef<HTMLFormElement>(null);

  const saved = params.data;
  const values: FormValues = draft ?? saved ?? {};
  const dirty = draft !== undefined && saved !== undefined && !deepEqual(draft, saved);

  useEffect(() => {
    if (!dirty) return;
    const warn = (event: BeforeUnloadEvent) => event.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  if (params.isPending) return <Loading label="Loading your parameters…" />;
  if (saved === undefined) return <ErrorState error={params.error} onRetry={() => void params.refetch()} />;

  const clientErrors = validateValues(schema, values);
  const visible: FieldErrors = { ...serverErrors };
  for (const [path, message] of Object.entries(clientErrors)) {
    if (showAll || touched.has(path)) visible[path] = message;
  }

  const focusField = (path: string) => {
    const el = form.current?.querySelector<HTMLElement>(`[name="${CSS.escape(path)}"]`);
    el?.focus();
  };

  const change = (next: FormValues, path: string) => {
    setDraft(next);
    setTouched((all) => new Set(all).add(path));
    if (serverErrors[path] !== undefined) {
      const { [path]: _gone, ...rest } = serverErrors;
      setServerErrors(rest);
    }
    if (save.error) save.reset();
  };

  const resetState = () => {
    setTouched(new Set());
    setShowAll(false);
    setServerErrors({});
    setFormErrors([]);
    save.reset();
  };

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    setShowAll(true);
    const first = Object.keys(clientErrors)[0];
    if (first !== undefined) {
      focusField(first);
      return;
    }
    const sent: ParamValues = values;
    save.mutate(sent, {
      onSuccess: () => {
        setDraft(undefined);
        resetState();
        notify(SAVED_TEXT, "success");
      },
      onError: (error) => {
        if (!(error instanceof ApiError) || error.fieldErrors.length === 0) return;
        const known = new Set(leafPaths(schema));
        const mapped: FieldErrors = {};
        const other: string[] = [];
        for (const e of error.fieldErrors) {
          if (known.has(e.field)) mapped[e.field] = mapped[e.field] ? `${mapped[e.field]}; ${e.message}` : e.message;
          else other.push(e.field ? `${e.field}: ${e.message}` : e.message);
        }
        setServerErrors(mapped);
        setFormErrors(other);
        const firstMapped = Object.keys(mapped)[0];
        if (firstMapped !== undefined) focusField(firstMapped);
      },
    });
  };

  const apiError = save.error instanceof ApiError ? save.error : null;
  const nonFieldFailure = save.error !== null && (apiError === null || apiError.fieldErrors.length === 0);
  const errorCount = Object.keys(visible).length;

  return (
    <form ref={form} className="params-form" data-testid="params-form" onSubmit={submit} noValidate>
      <SchemaForm schema={schema} values={values} errors={visible} disabled={save.isPending} onChange={change} />
      {(errorCount > 0 || formErrors.length > 0) && showAll && (
        <div className="form-error" role="alert">
          {errorCount > 0 && <p>Fix the highlighted field{errorCount === 1 ? "" : "s"} before saving.</p>}
          {formErrors.length > 0 && (
            <ul>
              {formErrors.map((text) => (
                <li key={text}>{text}</li>
              ))}
            </ul>
          )}
        </div>
      )}
      {nonFieldFailure && (
        <div className="form-error" role="alert">
          Not saved: {errorText(save.error)}{" "}
          {apiError?.retryable !== false && (
            <button type="button" className="link" onClick={() => submit()}>
              Try again
            </button>
          )}
        </div>
      )}
      <div className="params-actions">
        <button type="submit" data-testid="params-save" disabled={!dirty || save.isPending}>
          {save.isPending ? "Saving…" : "Save"}
        </button>
        <button
          type="button"
          className="ghost"
          disabled={!dirty || save.isPending}
          onClick={() => {
            setDraft(undefined);
            resetState();
          }}
        >
          Discard changes
        </button>
        <button type="button" className="ghost" disabled={save.isPending} onClick={() => setConfirmReset(true)}>
          Reset to defaults
        </button>
        <span className="spacer" />
        {dirty ? (
          <span className="badge badge-paused" data-testid="params-dirty">
            Unsaved changes
          </span>
        ) : (
          <span className="muted params-clean">All changes saved</span>
        )}
      </div>
      <ConfirmDialog
        open={confirmReset}
        title="Reset to the defaults?"
        confirmLabel="Fill in the defaults"
        onCancel={() => setConfirmReset(false)}
        onConfirm={() => {
          setConfirmReset(false);
          resetState();
          setDraft(clone(strategy.defaults));
        }}
      >
        <p>
          The form is filled with {strategy.title}'s default values. Nothing changes until you save; you can still
          discard them.
        </p>
      </ConfirmDialog>
    </form>
  );
}

export default function Parameters(_props: PageProps) {
  const [search, setSearch] = useSearchParams();
  const strategies = useStrategies();
  const [drafts, setDrafts] = useState<Record<string, FormValues>>({});
  const requested = search.get("strategy");

  if (strategies.isPending) {
    return (
      <>
        <h1>Parameters</h1>
        <Loading label="Loading strategies…" />
      </>
    );
  }
  if (strategies.error) {
    return (
      <>
        <h1>Parameters</h1>
        <ErrorState error={strategies.error} onRetry={() => void strategies.refetch()} />
      </>
    );
  }
  const list = strategies.data;
  const strategy = requested === null ? list[0] : list.find((s) => s.name === requested);
  const selectId = "params-strategy";

  return (
    <div className="parameters">
      <h1>Parameters</h1>
      {list.length === 0 ? (
        <Empty>No strategies are available.</Empty>
      ) : (
        <>
          <label htmlFor={selectId} className="strategy-select">
            Strategy
            <select
              id={selectId}
              value={strategy?.name ?? ""}
              onChange={(e) => setSearch({ strategy: e.target.value })}
            >
              {strategy === undefined && <option value="">Choose a strategy</option>}
              {list.map((s) => (
                <option key={s.name} value={s.name}>
                  {s.title}
                  {drafts[s.name] !== undefined && s.name !== strategy?.name ? " (unsaved changes)" : ""}
                </option>
              ))}
            </select>
          </label>
          {strategy === undefined ? (
            <Empty>There is no strategy named “{requested}”. Choose one above.</Empty>
          ) : (
            <>
              <section className="card" aria-labelledby="params-heading">
                <h2 id="params-heading">{strategy.title}</h2>
                <p className="muted strategy-about">{strategy.description}</p>
                <ParamsEditor
                  key={strategy.name}
                  strategy={strategy}
                  draft={drafts[strategy.name]}
                  setDraft={(values) =>
                    setDrafts((all) => {
                      const { [strategy.name]: _old, ...rest } = all;
                      return values === undefined ? rest : { ...rest, [strategy.name]: values };
                    })
                  }
                />
              </section>
              <ParamsHistory strategy={strategy.name} />
            </>
          )}
        </>
      )}
    </div>
  );
}
