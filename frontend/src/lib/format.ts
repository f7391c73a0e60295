/** Money, numbers and India Standard Time: how every page shows them. */

export type Money = number | string | null | undefined;

export function toNumber(value: Money): number {
  if (value === null || value === undefined || value === "") return 0;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : 0;
}

const INR = new Intl.NumberFormat("en-IN", {
  style: "currency",
  currency: "INR",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

export function formatInr(value: Money): string {
  return INR.format(toNumber(value));
}

/** A signed amount: "+₹1,234.50" / "−₹80.00", so a loss reads as one without colour. */
export function formatPnl(value: Money): string {
  const n = toNumber(value);
  const text = INR.format(Math.abs(n));
  if (n > 0) return `+${text}`;
  if (n < 0) return `\u2212${text}`;
  return text;
}

export function pnlClass(value: Money): string {
  const n = toNumber(value);
  return n > 0 ? "pos" : n < 0 ? "neg" : "flat";
}

export function formatPct(value: Money, digits = 1): string {
  return `${(toNumber(value) * 100).toFixed(digits)}%`;
}

export const IST_ZONE = "Asia/Kolkata";

const IST_DATE_TIME = new Intl.DateTimeFormat("en-IN", {
  timeZone: IST_ZONE,
  day: "2-digit",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

const IST_TIME = new Intl.DateTimeFormat("en-IN", {
  timeZone: IST_ZONE,
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  return IST_DATE_TIME.format(new Date(iso));
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  return IST_TIME.format(new Date(iso));
}

/** Days are plain YYYY-MM-DD strings; arithmetic on them happens at UTC noon so no zone shifts a day. */
export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export function weekday(day: string): number {
  return new Date(`${day}T12:00:00Z`).getUTCDay();
}

/** The Indian financial year (1 April – 31 March) holding `day`, as [from, to]. */
export function financialYear(day: string, offset = 0): [string, string] {
  const [y, m] = day.split("-").map(Number) as [number, number];
  const start = (m >= 4 ? y : y - 1) + offset;
  return [`${start}-04-01`, `${start + 1}-03-31`];
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h ${m.toString().padStart(2, "0")}m`;
  return `${m}m ${(s % 60).toString().padStart(2, "0")}s`;
}
