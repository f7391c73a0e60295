/**
 * A form built from a JSON Schema (the one pydantic writes for a strategy's parameters): numbers and integers
 * as number inputs bounded by the schema, booleans as checkboxes, enums as selects, times of day as time
 * inputs, nested objects as a fieldset of their fields. Every input is named by its dotted path
 * (`stop_loss_pct.mon`), which is also how the API's 422 errors name fields, so both kinds of error land
 * next to the same input.
 */
import { useEffect, useId, useState, type ReactNode } from "react";

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
  allOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  formatMinimum?: string;
  formatMaximum?: string;
}

export type FormValues = Record<string, unknown>;
/** Error messages by dotted field path. */
export type FieldErrors = Record<string, string>;

/** `#/$defs/Name` (or the older `#/definitions/Name`) looked up in the root schema; other keys kept. */
export function resolveSchema(schema: JsonSchema, root: JsonSchema, depth = 0): JsonSchema {
  if (depth > 16) return schema;
  let base: JsonSchema | undefined;
  if (typeof schema.$ref === "string") {
    const match = /^#\/(\$defs|definitions)\/(.+)$/.exec(schema.$ref);
    const name = match?.[2] !== undefined ? decodeURIComponent(match[2].replace(/~1/g, "/").replace(/~0/g, "~")) : "";
    const defs = match?.[1] === "definitions" ? root.definitions : root.$defs;
    base = defs?.[name];
  } else if (schema.allOf?.length === 1 && schema.allOf[0] !== undefined) {
    base = schema.allOf[0];
  } else if (schema.anyOf !== undefined) {
    // `X | None` becomes anyOf [X, {type: null}]: the form edits X.
    const nonNull = schema.anyOf.filter((s) => s.type !== "null");
    if (nonNull.length === 1 && nonNull[0] !== undefined) base = nonNull[0];
  }
  if (base === undefined) return schema;
  const { $ref: _ref, allOf: _allOf, anyOf: _anyOf, ...own } = schema;
  // The referring property's own title, description and default win over the definition's; a definition's
  // title is its class name ("StopLossPct"), so the field is named after the property instead.
  const { title: _className, ...definition } = resolveSchema(base, root, depth + 1);
  return { ...definition, ...own };
}

function typeOf(schema: JsonSchema): string | undefined {
  if (Array.isArray(schema.type)) return schema.type.find((t) => t !== "null");
  if (schema.type !== undefined) return schema.type;
  if (schema.properties !== undefined) return "object";
  if (schema.enum !== undefined && schema.enum.length > 0) return typeof schema.enum[0];
  if (schema.const !== undefined) return typeof schema.const;
  return undefined;
}

function titleCase(name: string): string {
  return name
    .split("_")
    .map((w) => (w ? w[0]!.toUpperCase() + w.slice(1) : w))
    .join(" ");
}

/** "stop_loss_pct" → "Stop loss %"; a title pydantic made up from the name reads the same way. */
export function fieldLabel(name: string, schema: JsonSchema): string {
  if (schema.title !== undefined && schema.title !== titleCase(name)) return schema.title;
  const words = name.split("_").filter(Boolean).map((w) => (w === "pct" ? "%" : w));
  const text = words.join(" ");
  return text ? text[0]!.toUpperCase() + text.slice(1) : name;
}

export function getPath(values: unknown, path: string): unknown {
  let here: unknown = values;
  for (const part of path.split(".")) {
    if (typeof here !== "object" || here === null) return undefined;
    here = (here as Record<string, unknown>)[part];
  }
  return here;
}

/** A copy of `values` with the value at `path` replaced (objects on the way copied, never mutated). */
export function setPath(values: FormValues, path: string, value: unknown): FormValues {
  const [head, ...rest] = path.split(".");
  if (head === undefined) return values;
  if (rest.length === 0) return { ...values, [head]: value };
  const inner = values[head];
  const child = typeof inner === "object" && inner !== null ? (inner as FormValues) : {};
  return { ...values, [head]: setPath(child, rest.join("."), value) };
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** "09:40" or "09:40:00" → seconds since midnight; null when it is not a time of day. */
export function timeSeconds(text: string): number | null {
  const m = /^(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$/.exec(text);
  if (!m) return null;
  const [h, min, s] = [Number(m[1]), Number(m[2]), Number(m[3] ?? "0")];
  if (h > 23 || min > 59 || s > 59) return null;
  return h * 3600 + min * 60 + s;
}

function shortTime(text: string): string {
  return /^\d{2}:\d{2}:00$/.test(text) ? text.slice(0, 5) : text;
}

function formatBound(n: number): string {
  return String(n);
}

/** Why one leaf value breaks its schema, or null when it fits. */
export function checkValue(schema: JsonSchema, value: unknown): string | null {
  const type = typeOf(schema);
  if (schema.const !== undefined) return deepEqual(value, schema.const) ? null : `Must be ${String(schema.const)}`;
  if (schema.enum !== undefined) {
    return schema.enum.some((e) => deepEqual(e, value)) ? null : "Choose one of the options";
  }
  if (type === "integer" || type === "number") {
    if (value === null || value === undefined || value === "") return "Required";
    if (typeof value !== "number" || !Number.isFinite(value)) return "Enter a number";
    if (type === "integer" && !Number.isInteger(value)) return "Enter a whole number";
    if (schema.minimum !== undefined && value < schema.minimum) return `Must be at least ${formatBound(schema.minimum)}`;
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) {
      return `Must be more than ${formatBound(schema.exclusiveMinimum)}`;
    }
    if (schema.maximum !== undefined && value > schema.maximum) return `Must be at most ${formatBound(schema.maximum)}`;
    if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) {
      return `Must be less than ${formatBound(schema.exclusiveMaximum)}`;
    }
    if (schema.multipleOf !== undefined && schema.multipleOf > 0) {
      const ratio = value / schema.multipleOf;
      if (Math.abs(ratio - Math.round(ratio)) > 1e-9) return `Must be a multiple of ${schema.multipleOf}`;
    }
    return null;
  }
  if (type === "boolean") return typeof value === "boolean" ? null : "Required";
  if (type === "string") {
    if (typeof value !== "string") return "Required";
    if (schema.format === "time") {
      const at = timeSeconds(value);
      if (at === null) return "Enter a time of day";
      const lo = schema.formatMinimum !== undefined ? timeSeconds(schema.formatMinimum) : null;
      const hi = schema.formatMaximum !== undefined ? timeSeconds(schema.formatMaximum) : null;
      if ((lo !== null && at < lo) || (hi !== null && at > hi)) {
        const range = [schema.formatMinimum, schema.formatMaximum].map((t) => shortTime(t ?? "")).join("–");
        return lo !== null && hi !== null ? `Must be between ${range}` : lo !== null ? `Must be ${shortTime(schema.formatMinimum ?? "")} or later` : `Must be ${shortTime(schema.formatMaximum ?? "")} or earlier`;
      }
      return null;
    }
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      return schema.minLength === 1 ? "Required" : `At least ${schema.minLength} characters`;
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) return `At most ${schema.maxLength} characters`;
    if (schema.pattern !== undefined) {
      try {
        if (!new RegExp(schema.pattern, "u").test(value)) return "Not in the expected format";
      } catch {
        return null;
      }
    }
    return null;
  }
  return null;
}

export interface SchemaField {
  path: string;
  name: string;
  schema: JsonSchema;
}

/** The object's fields in the schema's order, each resolved. */
export function fieldsOf(schema: JsonSchema, root: JsonSchema, prefix = ""): SchemaField[] {
  const resolved = resolveSchema(schema, root);
  return Object.entries(resolved.properties ?? {}).map(([name, field]) => ({
    name,
    path: prefix ? `${prefix}.${name}` : name,
    schema: resolveSchema(field, root),
  }));
}

/** Every leaf that breaks its bounds, by dotted path (checked before anything is sent). */
export function validateValues(schema: JsonSchema, values: unknown, root: JsonSchema = schema, prefix = ""): FieldErrors {
  const errors: FieldErrors = {};
  for (const field of fieldsOf(schema, root, prefix)) {
    if (typeOf(field.schema) === "object") {
      Object.assign(errors, validateValues(field.schema, getPath(values, field.name) ?? {}, root, field.path));
      continue;
    }
    const problem = checkValue(field.schema, getPath(values, field.name));
    if (problem !== null) errors[field.path] = problem;
  }
  return errors;
}

/** Every leaf path the schema describes (to tell the API's errors about form fields from the others). */
export function leafPaths(schema: JsonSchema, root: JsonSchema = schema, prefix = ""): string[] {
  return fieldsOf(schema, root, prefix).flatMap((field) =>
    typeOf(field.schema) === "object" ? [field.path, ...leafPaths(field.schema, root, field.path)] : [field.path],
  );
}

export function inputId(prefix: string, path: string): string {
  return `${prefix}-${path.replace(/[^A-Za-z0-9_-]/g, "-")}`;
}

interface FieldProps {
  field: SchemaField;
  value: unknown;
  error: string | undefined;
  disabled: boolean;
  idPrefix: string;
  onChange: (path: string, value: unknown) => void;
}

/** A number input that lets the user type freely ("0.", "") while the form holds numbers. */
function NumberInput({
  id,
  name,
  value,
  schema,
  integer,
  disabled,
  describedBy,
  invalid,
  onChange,
}: {
  id: string;
  name: string;
  value: unknown;
  schema: JsonSchema;
  integer: boolean;
  disabled: boolean;
  describedBy: string | undefined;
  invalid: boolean;
  onChange: (value: number | null) => void;
}) {
  const shown = typeof value === "number" ? String(value) : "";
  const [text, setText] = useState(shown);
  useEffect(() => {
    // The value changed from outside (loaded, reset, discarded): show it unless the text already means it.
    setText((current) => (current.trim() !== "" && Number(current) === value ? current : shown));
  }, [value, shown]);
  const min = schema.minimum ?? schema.exclusiveMinimum;
  const max = schema.maximum ?? schema.exclusiveMaximum;
  return (
    <input
      id={id}
      name={name}
      type="number"
      inputMode={integer ? "numeric" : "decimal"}
      min={min}
      max={max}
      step={schema.multipleOf ?? (integer ? 1 : "any")}
      value={text}
      disabled={disabled}
      aria-invalid={invalid || undefined}
      aria-describedby={describedBy}
      onChange={(e) => {
        const next = e.target.value;
        setText(next);
        const n = next.trim() === "" ? null : Number(next);
        onChange(n === null || Number.isNaN(n) ? null : n);
      }}
    />
  );
}

function LeafField({ field, value, error, disabled, idPrefix, onChange }: FieldProps) {
  const { schema, path, name } = field;
  const id = inputId(idPrefix, path);
  const hintId = schema.description ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [errorId, hintId].filter(Boolean).join(" ") || undefined;
  const type = typeOf(schema);
  const label = fieldLabel(name, schema);
  const invalid = error !== undefined;
  let control: ReactNode;

  if (schema.const !== undefined) {
    control = <input id={id} name={path} value={String(schema.const)} readOnly aria-describedby={describedBy} />;
  } else if (schema.enum !== undefined) {
    const options = schema.enum;
    const at = options.findIndex((o) => deepEqual(o, value));
    control = (
      <select
        id={id}
        name={path}
        value={at < 0 ? "" : String(at)}
        disabled={disabled}
        aria-invalid={invalid || undefined}
        aria-describedby={describedBy}
        onChange={(e) => onChange(path, options[Number(e.target.value)])}
      >
        {at < 0 && <option value="">Choose…</option>}
        {options.map((o, i) => (
          <option key={i} value={String(i)}>
            {String(o)}
          </option>
        ))}
      </select>
    );
  } else if (type === "boolean") {
    return (
      <div className="schema-field">
        <label className="inline" htmlFor={id}>
          <input
            id={id}
            name={path}
            type="checkbox"
            checked={value === true}
            disabled={disabled}
            aria-describedby={describedBy}
            onChange={(e) => onChange(path, e.target.checked)}
          />
          {label}
        </label>
        {schema.description && (
          <span id={hintId} className="hint">
            {schema.description}
          </span>
        )}
        {error && (
          <span id={errorId} className="field-error">
            {error}
          </span>
        )}
      </div>
    );
  } else if (type === "integer" || type === "number") {
    control = (
      <NumberInput
        id={id}
        name={path}
        value={value}
        schema={schema}
        integer={type === "integer"}
        disabled={disabled}
        describedBy={describedBy}
        invalid={invalid}
        onChange={(n) => onChange(path, n)}
      />
    );
  } else if (type === "string" && schema.format === "time") {
    const text = typeof value === "string" ? value : "";
    control = (
      <input
        id={id}
        name={path}
        type="time"
        // The API answers "09:40:00"; minutes are what a trader sets (a time with seconds keeps them).
        step={/^\d{2}:\d{2}:(?!00)\d{2}/.test(text) ? 1 : 60}
        min={schema.formatMinimum ? shortTime(schema.formatMinimum) : undefined}
        max={schema.formatMaximum ? shortTime(schema.formatMaximum) : undefined}
        value={shortTime(text)}
        disabled={disabled}
        aria-invalid={invalid || undefined}
        aria-describedby={describedBy}
        onChange={(e) => {
          const next = e.target.value;
          onChange(path, /^\d{2}:\d{2}$/.test(next) ? `${next}:00` : next);
        }}
      />
    );
  } else {
    control = (
      <input
        id={id}
        name={path}
        type="text"
        value={typeof value === "string" ? value : value === undefined || value === null ? "" : String(value)}
        maxLength={schema.maxLength}
        disabled={disabled}
        autoComplete="off"
        spellCheck={false}
        aria-invalid={invalid || undefined}
        aria-describedby={describedBy}
        onChange={(e) => onChange(path, e.target.value)}
      />
    );
  }
  return (
    <div className="schema-field">
      <label htmlFor={id}>{label}</label>
      {control}
      {error && (
        <span id={errorId} className="field-error">
          {error}
        </span>
      )}
      {schema.description && (
        <span id={hintId} className="hint">
          {schema.description}
        </span>
      )}
    </div>
  );
}

function ObjectFields({
  schema,
  root,
  values,
  prefix,
  errors,
  disabled,
  idPrefix,
  onChange,
}: {
  schema: JsonSchema;
  root: JsonSchema;
  values: unknown;
  prefix: string;
  errors: FieldErrors;
  disabled: boolean;
  idPrefix: string;
  onChange: (path: string, value: unknown) => void;
}) {
  const fields = fieldsOf(schema, root, prefix);
  return (
    <div className="schema-fields">
      {fields.map((field) => {
        const value = getPath(values, field.name);
        if (typeOf(field.schema) === "object") {
          const hintId = field.schema.description ? inputId(idPrefix, `${field.path}-hint`) : undefined;
          const error = errors[field.path];
          return (
            <fieldset key={field.path} className="schema-group" aria-describedby={hintId}>
              <legend>{fieldLabel(field.name, field.schema)}</legend>
              {field.schema.description && (
                <p id={hintId} className="hint">
                  {field.schema.description}
                </p>
              )}
              {error && <p className="field-error">{error}</p>}
              <ObjectFields
                schema={field.schema}
                root={root}
                values={value ?? {}}
                prefix={field.path}
                errors={errors}
                disabled={disabled}
                idPrefix={idPrefix}
                onChange={onChange}
              />
            </fieldset>
          );
        }
        return (
          <LeafField
            key={field.path}
            field={field}
            value={value}
            error={errors[field.path]}
            disabled={disabled}
            idPrefix={idPrefix}
            onChange={onChange}
          />
        );
      })}
    </div>
  );
}

/** The inputs of a schema's fields; the caller owns the values, the errors and the <form>. */
export function SchemaForm({
  schema,
  values,
  errors = {},
  disabled = false,
  onChange,
}: {
  schema: JsonSchema;
  values: FormValues;
  errors?: FieldErrors;
  disabled?: boolean;
  onChange: (values: FormValues, path: string) => void;
}) {
  const idPrefix = useId().replace(/:/g, "");
  return (
    <ObjectFields
      schema={schema}
      root={schema}
      values={values}
      prefix=""
      errors={errors}
      disabled={disabled}
      idPrefix={`sf${idPrefix}`}
      onChange={(path, value) => onChange(setPath(values, path, value), path)}
    />
  );
}
