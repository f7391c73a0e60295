/** Chart colours come from the page's CSS variables, so charts follow the light and dark themes. */

export interface ChartPalette {
  text: string;
  muted: string;
  border: string;
  surface: string;
  pos: string;
  neg: string;
  accent: string;
}

const FALLBACK: ChartPalette = {
  text: "#17202b",
  muted: "#5b6675",
  border: "#d7dce3",
  surface: "#ffffff",
  pos: "#0f7b3f",
  neg: "#c62828",
  accent: "#1f6feb",
};

/** The current theme's colours, read from `:root`. */
export function readPalette(root: HTMLElement = document.documentElement): ChartPalette {
  const style = getComputedStyle(root);
  const read = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: read("--text", FALLBACK.text),
    muted: read("--muted", FALLBACK.muted),
    border: read("--border", FALLBACK.border),
    surface: read("--surface", FALLBACK.surface),
    pos: read("--pos", FALLBACK.pos),
    neg: read("--neg", FALLBACK.neg),
    accent: read("--accent", FALLBACK.accent),
  };
}

/** `#rrggbb` (or `#rgb`) at an opacity, as the chart library wants for fills; other colours pass unchanged. */
export function withAlpha(color: string, alpha: number): string {
  let hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color)?.[1];
  if (hex === undefined) return color;
  if (hex.length === 3) hex = [...hex].map((c) => c + c).join("");
  const n = parseInt(hex, 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** Calls `onChange` whenever the theme attribute on `:root` changes; returns the unsubscribe function. */
export function watchTheme(onChange: () => void, root: HTMLElement = document.documentElement): () => void {
  const observer = new MutationObserver(onChange);
  observer.observe(root, { attributes: true, attributeFilter: ["data-theme"] });
  return () => observer.disconnect();
}
