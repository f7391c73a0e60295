/** Light and dark themes: the system's choice until the user picks one (kept in localStorage; not a secret). */
import { useEffect, useState } from "react";

export type Theme = "light" | "dark";
const KEY = "tradedesk.theme";

export function initialTheme(): Theme {
  const saved = localStorage.getItem(KEY);
  if (saved === "light" || saved === "dark") return saved;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(theme: Theme): void {
  document.documentElement.dataset["theme"] = theme;
}

export function useTheme(): [Theme, (t: Theme) => void] {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  useEffect(() => applyTheme(theme), [theme]);
  return [
    theme,
    (t: Theme) => {
      localStorage.setItem(KEY, t);
      setTheme(t);
    },
  ];
}

export function ThemeToggle({ theme, onChange }: { theme: Theme; onChange: (t: Theme) => void }) {
  const next = theme === "dark" ? "light" : "dark";
  return (
    <button type="button" className="ghost" onClick={() => onChange(next)} aria-label={`Switch to ${next} theme`}>
      {theme === "dark" ? "☀ Light" : "☾ Dark"}
    </button>
  );
}
