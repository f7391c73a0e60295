/**
 * Cumulative realised P&L as a baseline (green above zero, red below) over each day's net as a histogram.
 * The only module that imports the chart library, so it loads only with the pages that draw this chart.
 */
import {
  BaselineSeries,
  ColorType,
  createChart,
  HistogramSeries,
  type DeepPartial,
  type ChartOptions,
  type HistogramData,
  type IChartApi,
  type ISeriesApi,
  type BaselineSeriesPartialOptions,
  type Time,
} from "lightweight-charts";
import { useEffect, useRef } from "react";
import type { CumulativePoint } from "../../api/trading";
import { formatPnl, toNumber } from "../../lib/format";
import { readPalette, watchTheme, withAlpha, type ChartPalette } from "./chartTheme";
import "./charts.css";

const COMPACT_INR = new Intl.NumberFormat("en-IN", {
  style: "currency",
  currency: "INR",
  maximumFractionDigits: 0,
});

function chartOptions(p: ChartPalette): DeepPartial<ChartOptions> {
  return {
    layout: {
      background: { type: ColorType.Solid, color: p.surface },
      textColor: p.muted,
      panes: { separatorColor: p.border },
    },
    grid: { vertLines: { color: withAlpha(p.border, 0.5) }, horzLines: { color: withAlpha(p.border, 0.5) } },
    rightPriceScale: { borderColor: p.border },
    // A resize (a narrower phone, the card changing width) keeps the same days in view.
    timeScale: { borderColor: p.border, lockVisibleTimeRangeOnResize: true },
    crosshair: { vertLine: { labelBackgroundColor: p.accent }, horzLine: { labelBackgroundColor: p.accent } },
  };
}

function baselineOptions(p: ChartPalette): BaselineSeriesPartialOptions {
  return {
    baseValue: { type: "price", price: 0 },
    topLineColor: p.pos,
    topFillColor1: withAlpha(p.pos, 0.28),
    topFillColor2: withAlpha(p.pos, 0.04),
    bottomLineColor: p.neg,
    bottomFillColor1: withAlpha(p.neg, 0.04),
    bottomFillColor2: withAlpha(p.neg, 0.28),
    lineWidth: 2,
  };
}

/** Days ascending and unique, as the chart library requires. */
export function chartPoints(points: readonly CumulativePoint[]): CumulativePoint[] {
  const byDay = new Map<string, CumulativePoint>();
  for (const point of points) byDay.set(point.day, point);
  return [...byDay.values()].sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0));
}

function netBars(points: readonly CumulativePoint[], p: ChartPalette): HistogramData<Time>[] {
  return points.map((point) => {
    const net = toNumber(point.net);
    return { time: point.day, value: net, color: withAlpha(net < 0 ? p.neg : p.pos, 0.55) };
  });
}

export function chartLabel(points: readonly CumulativePoint[]): string {
  const first = points[0];
  const last = points[points.length - 1];
  if (first === undefined || last === undefined) return "Cumulative P&L: no closed trades in this range";
  return `Cumulative P&L from ${first.day} to ${last.day}, ending at ${formatPnl(last.cumulative)}`;
}

interface Drawn {
  chart: IChartApi;
  cumulative: ISeriesApi<"Baseline">;
  net: ISeriesApi<"Histogram">;
}

export default function CumulativePnlChart({
  points,
  height = 280,
}: {
  points: readonly CumulativePoint[];
  height?: number;
}) {
  const container = useRef<HTMLDivElement>(null);
  const drawn = useRef<Drawn | null>(null);
  const sorted = chartPoints(points);
  const latest = useRef(sorted);
  latest.current = sorted;

  useEffect(() => {
    const element = container.current;
    if (element === null) return;
    const palette = readPalette();
    // autoSize follows the container with a ResizeObserver (width from the card, height from CSS).
    const chart = createChart(element, {
      ...chartOptions(palette),
      autoSize: true,
      localization: { priceFormatter: (price: number) => COMPACT_INR.format(price) },
    });
    const cumulative = chart.addSeries(BaselineSeries, baselineOptions(palette));
    // Each day's net in a pane of its own below the running total, with its own scale.
    const net = chart.addSeries(HistogramSeries, { priceLineVisible: false, lastValueVisible: false }, 1);
    const [top, bottom] = chart.panes();
    top?.setStretchFactor(3);
    bottom?.setStretchFactor(1);
    drawn.current = { chart, cumulative, net };

    const stopWatching = watchTheme(() => {
      const next = readPalette();
      chart.applyOptions(chartOptions(next));
      cumulative.applyOptions(baselineOptions(next));
      net.setData(netBars(latest.current, next)); // bar colours are per point
    });
    return () => {
      stopWatching();
      drawn.current = null;
      chart.remove();
    };
  }, []);

  const key = sorted.map((p) => `${p.day}:${p.cumulative}:${p.net}`).join("|");
  useEffect(() => {
    const current = drawn.current;
    if (current === null) return;
    const palette = readPalette();
    current.cumulative.setData(latest.current.map((p) => ({ time: p.day, value: toNumber(p.cumulative) })));
    current.net.setData(netBars(latest.current, palette));
    current.chart.timeScale().fitContent();
  }, [key]);

  return (
    <figure className="pnl-chart-figure">
      <div
        ref={container}
        className="pnl-chart"
        style={{ height }}
        role="img"
        aria-label={chartLabel(sorted)}
        data-testid="pnl-chart"
      />
      <figcaption className="muted">Line: running total. Bars: each day's net.</figcaption>
    </figure>
  );
}
