/**
 * A calendar of daily P&L: weeks as columns, weekdays (Monday first) as rows, green for a profit and red for
 * a loss, darker the bigger the day. Days with trades link to them; every day says its figures in words.
 */
import { Link } from "react-router";
import { addDays, formatPnl, toNumber, weekday, type Money } from "../lib/format";
import "./charts/charts.css";

export interface HeatmapDay {
  day: string;
  net: Money;
  trades: number;
}

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The weeks (Monday to Sunday, 7 days each) that cover `from`..`to`; days outside the range are included. */
export function calendarWeeks(from: string, to: string): string[][] {
  if (from > to) return [];
  let monday = addDays(from, -((weekday(from) + 6) % 7));
  const weeks: string[][] = [];
  while (monday <= to) {
    const start = monday;
    weeks.push(WEEKDAYS.map((_, i) => addDays(start, i)));
    monday = addDays(monday, 7);
  }
  return weeks;
}

/** 0 for no trades, "flat" for trades netting zero, else 1–4 by |net| against the range's largest |net|. */
export function intensity(net: number, trades: number, maxAbs: number): 0 | "flat" | 1 | 2 | 3 | 4 {
  if (trades <= 0) return 0;
  if (net === 0 || maxAbs <= 0) return "flat";
  return Math.min(4, Math.max(1, Math.ceil((Math.abs(net) / maxAbs) * 4))) as 1 | 2 | 3 | 4;
}

export function cellLabel(day: string, stat: HeatmapDay | undefined): string {
  if (stat === undefined || stat.trades <= 0) return `${day}: no trades`;
  return `${day}: ${formatPnl(stat.net)}, ${stat.trades} ${stat.trades === 1 ? "trade" : "trades"}`;
}

function cellClass(net: number, level: ReturnType<typeof intensity>): string {
  if (level === 0) return "hm-cell";
  if (level === "flat") return "hm-cell hm-flat";
  return `hm-cell hm-${net < 0 ? "neg" : "pos"}-${level}`;
}

/** The month a week column is labelled with: where a month starts inside the range, and the first column. */
function monthLabel(week: string[], index: number, from: string, to: string): string | null {
  const starts = week.find((d) => d.endsWith("-01") && d >= from && d <= to);
  const day = starts ?? (index === 0 ? from : undefined);
  if (day === undefined) return null;
  return MONTHS[Number(day.slice(5, 7)) - 1] ?? null;
}

export function Heatmap({
  from,
  to,
  days,
  caption,
  hrefFor,
}: {
  from: string;
  to: string;
  days: readonly HeatmapDay[];
  caption: string;
  hrefFor?: (day: string) => string;
}) {
  const byDay = new Map(days.map((d) => [d.day, d]));
  const maxAbs = Math.max(0, ...days.map((d) => Math.abs(toNumber(d.net))));
  const weeks = calendarWeeks(from, to);
  return (
    <div className="heatmap-wrap">
      <table className="heatmap">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <td />
            {weeks.map((week, i) => {
              const month = monthLabel(week, i, from, to);
              return (
                <th key={week[0]} scope="col" style={{ position: "relative" }}>
                  {month !== null && (
                    <span aria-hidden="true" style={{ position: "absolute", left: 0, bottom: 0 }}>
                      {month}
                    </span>
                  )}
                  <span className="visually-hidden">Week of {week[0]}</span>
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {WEEKDAYS.map((name, row) => (
            <tr key={name}>
              <th scope="row">{name}</th>
              {weeks.map((week) => {
                const day = week[row] ?? "";
                if (day < from || day > to) {
                  return (
                    <td key={day}>
                      <span className="hm-cell hm-out" />
                    </td>
                  );
                }
                const stat = byDay.get(day);
                const net = toNumber(stat?.net);
                const label = cellLabel(day, stat);
                const className = cellClass(net, intensity(net, stat?.trades ?? 0, maxAbs));
                return (
                  <td key={day} title={label}>
                    {stat !== undefined && stat.trades > 0 && hrefFor !== undefined ? (
                      <Link to={hrefFor(day)} className={className} aria-label={label} />
                    ) : (
                      <span className={className} role="img" aria-label={label} />
                    )}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
      <div className="heatmap-legend" aria-hidden="true">
        <span>Loss</span>
        {[4, 3, 2, 1].map((l) => (
          <span key={`n${l}`} className={`hm-cell hm-neg-${l}`} />
        ))}
        <span className="hm-cell" />
        {[1, 2, 3, 4].map((l) => (
          <span key={`p${l}`} className={`hm-cell hm-pos-${l}`} />
        ))}
        <span>Profit</span>
      </div>
    </div>
  );
}
