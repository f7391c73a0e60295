import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { describe, expect, it } from "vitest";
import { STRATEGIES } from "./SchemaForm.fixtures";
import {
  fieldLabel,
  leafPaths,
  resolveSchema,
  SchemaForm,
  setPath,
  validateValues,
  type FormValues,
  type JsonSchema,
} from "./SchemaForm";

const strangle = STRATEGIES.find((s) => s.name === "short_strangle")!;
const sma = STRATEGIES.find((s) => s.name === "sma_crossover")!;
const strangleSchema = strangle.params_schema as JsonSchema;
const smaSchema = sma.params_schema as JsonSchema;

describe("schema reading and checking", () => {
  it("resolves a $ref into $defs and keeps the referring property's description", () => {
    const prop = strangleSchema.properties!["stop_loss_pct"]!;
    const resolved = resolveSchema(prop, strangleSchema);
    expect(Object.keys(resolved.properties ?? {})).toEqual(["mon", "tue", "wed", "thu", "fri"]);
    expect(resolved.description).toBe("Stop trigger above the entry fill, % by weekday.");
    expect(leafPaths(strangleSchema)).toContain("stop_loss_pct.mon");
  });

  it("accepts the strategies' own defaults", () => {
    expect(validateValues(strangleSchema, strangle.defaults)).toEqual({});
    expect(validateValues(smaSchema, sma.defaults)).toEqual({});
  });

  it("names every out-of-bounds field by its dotted path", () => {
    let values = strangle.defaults as FormValues;
    values = setPath(values, "stop_loss_pct.mon", 500);
    values = setPath(values, "first_profit_points", 0);
    values = setPath(values, "call_lots", 1.5);
    values = setPath(values, "entry_time", "08:00:00");
    values = setPath(values, "delta_low", null);
    expect(validateValues(strangleSchema, values)).toEqual({
      "stop_loss_pct.mon": "Must be at most 200",
      first_profit_points: "Must be more than 0",
      call_lots: "Enter a whole number",
      entry_time: "Must be between 09:15–15:30",
      delta_low: "Required",
    });
    // The nested object was copied, not changed in place.
    expect((strangle.defaults["stop_loss_pct"] as Record<string, number>)["mon"]).toBe(30);
  });

  it("checks string patterns, lengths and constants", () => {
    const bad = { ...sma.defaults, tradingsymbol: "reliance", exchange: "BSE", fast: 1 };
    expect(validateValues(smaSchema, bad)).toEqual({
      tradingsymbol: "Not in the expected format",
      exchange: "Must be NSE",
      fast: "Must be at least 2",
    });
    expect(validateValues(smaSchema, { ...sma.defaults, tradingsymbol: "" })).toEqual({ tradingsymbol: "Required" });
  });

  it("labels fields from their names when pydantic made the title up", () => {
    expect(fieldLabel("stop_limit_buffer_pct", { title: "Stop Limit Buffer Pct" })).toBe("Stop limit buffer %");
    expect(fieldLabel("x", { title: "A real title" })).toBe("A real title");
  });
});

function Harness({ schema, initial }: { schema: JsonSchema; initial: FormValues }) {
  const [values, setValues] = useState(initial);
  return (
    <>
      <SchemaForm schema={schema} values={values} errors={validateValues(schema, values)} onChange={setValues} />
      <output data-testid="values">{JSON.stringify(values)}</output>
    </>
  );
}

const current = () => JSON.parse(screen.getByTestId("values").textContent ?? "{}") as FormValues;

describe("SchemaForm", () => {
  it("builds labelled inputs named by dotted path, bounded by the schema", () => {
    render(<Harness schema={strangleSchema} initial={strangle.defaults} />);
    const callLots = screen.getByLabelText("Call lots");
    expect(callLots).toHaveAttribute("name", "call_lots");
    expect(callLots).toHaveAttribute("type", "number");
    expect(callLots).toHaveAttribute("min", "1");
    expect(callLots).toHaveAttribute("max", "50");
    expect(callLots).toHaveAttribute("step", "1");
    expect(callLots).toHaveAccessibleDescription(/Lots of the call sold/);
    expect(screen.getByLabelText("Delta low")).toHaveAttribute("step", "any");

    const group = screen.getByRole("group", { name: "Stop loss %" });
    const monday = within(group).getByLabelText("Mon");
    expect(monday).toHaveAttribute("name", "stop_loss_pct.mon");
    expect(monday).toHaveValue(30);

    const entry = screen.getByLabelText("Entry time");
    expect(entry).toHaveAttribute("type", "time");
    expect(entry).toHaveAttribute("min", "09:15");
    expect(entry).toHaveAttribute("max", "15:30");
    expect(entry).toHaveValue("09:40");
  });

  it("edits nested numbers as numbers and times in the API's format, with inline errors", async () => {
    const user = userEvent.setup();
    render(<Harness schema={strangleSchema} initial={strangle.defaults} />);
    const monday = screen.getByRole("spinbutton", { name: "Mon" });
    await user.clear(monday);
    await user.type(monday, "250");
    expect((current()["stop_loss_pct"] as Record<string, unknown>)["mon"]).toBe(250);
    expect((current()["stop_loss_pct"] as Record<string, unknown>)["tue"]).toBe(30);
    expect(monday).toHaveAttribute("aria-invalid", "true");
    expect(monday).toHaveAccessibleDescription(/Must be at most 200/);

    await user.clear(monday);
    expect((current()["stop_loss_pct"] as Record<string, unknown>)["mon"]).toBeNull();
    expect(monday).toHaveAccessibleDescription(/Required/);

    const entry = screen.getByLabelText("Entry time");
    await user.clear(entry);
    await user.type(entry, "09:45");
    expect(current()["entry_time"]).toBe("09:45:00");
  });

  it("renders booleans as checkboxes, enums as selects and constants read-only", async () => {
    const user = userEvent.setup();
    const schema: JsonSchema = {
      type: "object",
      properties: {
        hedge: { type: "boolean", title: "Hedge", description: "Buy wings." },
        mode: { enum: ["fast", "slow"], title: "Mode" },
        exchange: { const: "NSE", type: "string", title: "Exchange" },
      },
    };
    render(<Harness schema={schema} initial={{ hedge: false, mode: "fast", exchange: "NSE" }} />);
    await user.click(screen.getByRole("checkbox", { name: "Hedge" }));
    expect(current()["hedge"]).toBe(true);
    await user.selectOptions(screen.getByRole("combobox", { name: "Mode" }), "slow");
    expect(current()["mode"]).toBe("slow");
    expect(screen.getByLabelText("Exchange")).toHaveAttribute("readonly");
  });
});
