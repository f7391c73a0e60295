import { render, waitFor } from "@testing-library/react";
import CumulativePnlChart, { chartLabel, chartPoints } from "./CumulativePnlChart";
import { withAlpha } from "./chartTheme";

const lib = vi.hoisted(() => {
  const made: {
    container: HTMLElement;
    options: Record<string, unknown>;
    applied: Record<string, unknown>[];
    series: { kind: string; pane: number; options: Record<string, unknown>; applied: Record<string, unknown>[]; data: unknown[][] }[];
    removed: boolean;
  }[] = [];
  return { made };
});

vi.mock("lightweight-charts", () => ({
  ColorType: { Solid: "solid" },
  BaselineSeries: { type: "Baseline" },
  HistogramSeries: { type: "Histogram" },
  createChart: (container: HTMLElement, options: Record<string, unknown>) => {
    const chart = { container, options, applied: [] as Record<string, unknown>[], series: [] as never[], removed: false };
    lib.made.push(chart as never);
    return {
      addSeries: (definition: { type: string }, seriesOptions: Record<string, unknown>, pane = 0) => {
        const series = { kind: definition.type, pane, options: seriesOptions, applied: [] as Record<string, unknown>[], data: [] as unknown[][] };
        (chart.series as unknown[]).push(series);
        return {
          setData: (data: unknown[]) => series.data.push(data),
          applyOptions: (o: Record<string, unknown>) => series.applied.push(o),
        };
      },
      panes: () => [{ setStretchFactor: () => undefined }, { setStretchFactor: () => undefined }],
      timeScale: () => ({ fitContent: () => undefined }),
      applyOptions: (o: Record<string, unknown>) => chart.applied.push(o),
      remove: () => {
        chart.removed = true;
      },
    };
  },
}));

const POINTS = [
  { day: "2026-11-19", net: "-200", cumulative: "300" },
  { day: "2026-11-18", net: "500", cumulative: "500" },
];

afterEach(() => {
  lib.made.length = 0;
  document.documentElement.removeAttribute("data-theme");
  document.documentElement.style.removeProperty("--pos");
});

describe("CumulativePnlChart", () => {
  it("sizes itself to its container and draws the points in day order", () => {
    const { getByRole } = render(<CumulativePnlChart points={POINTS} />);
    const chart = lib.made[0]!;
    expect(chart.options["autoSize"]).toBe(true);
    expect(chart.container).toBe(getByRole("img"));
    const [baseline, histogram] = chart.series;
    expect(baseline!.kind).toBe("Baseline");
    expect(histogram).toMatchObject({ kind: "Histogram", pane: 1 }); // daily net in its own pane
    expect(baseline!.data.at(-1)).toEqual([
      { time: "2026-11-18", value: 500 },
      { time: "2026-11-19", value: 300 },
    ]);
    const bars = histogram!.data.at(-1) as { value: number; color: string }[];
    expect(bars.map((b) => b.value)).toEqual([500, -200]);
    expect(bars[0]!.color).not.toBe(bars[1]!.color); // profit and loss days differ
    expect(getByRole("img")).toHaveAccessibleName("Cumulative P&L from 2026-11-18 to 2026-11-19, ending at +₹300.00");
  });

  it("recolours when the theme changes and is disposed on unmount", async () => {
    const { unmount } = render(<CumulativePnlChart points={POINTS} />);
    const chart = lib.made[0]!;
    document.documentElement.style.setProperty("--pos", "#00ff00");
    document.documentElement.dataset["theme"] = "dark";
    await waitFor(() => expect(chart.series[0]!.applied.at(-1)?.["topLineColor"]).toBe("#00ff00"));
    expect(chart.applied.length).toBeGreaterThan(0);
    unmount();
    expect(chart.removed).toBe(true);
  });

  it("redraws when the points change, on the same chart", () => {
    const { rerender } = render(<CumulativePnlChart points={POINTS} />);
    rerender(<CumulativePnlChart points={[{ day: "2026-11-20", net: "10", cumulative: "10" }]} />);
    expect(lib.made).toHaveLength(1);
    expect(lib.made[0]!.series[0]!.data.at(-1)).toEqual([{ time: "2026-11-20", value: 10 }]);
  });
});

describe("chart helpers", () => {
  it("keeps one point per day, ascending", () => {
    expect(chartPoints([...POINTS, { day: "2026-11-18", net: "1", cumulative: "1" }]).map((p) => p.day)).toEqual([
      "2026-11-18",
      "2026-11-19",
    ]);
  });
  it("describes an empty range", () => {
    expect(chartLabel([])).toBe("Cumulative P&L: no closed trades in this range");
  });
  it("turns theme hex colours into translucent fills", () => {
    expect(withAlpha("#0f7b3f", 0.5)).toBe("rgba(15, 123, 63, 0.5)");
    expect(withAlpha("#fff", 1)).toBe("rgba(255, 255, 255, 1)");
    expect(withAlpha("rgb(1 2 3)", 0.5)).toBe("rgb(1 2 3)");
  });
});
