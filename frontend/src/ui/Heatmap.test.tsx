import { render, screen, within } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { calendarWeeks, cellLabel, Heatmap, intensity } from "./Heatmap";

describe("calendarWeeks", () => {
  it("starts each column on a Monday and covers the range", () => {
    // 2026-11-20 is a Friday; 2026-11-24 the next Tuesday.
    const weeks = calendarWeeks("2026-11-20", "2026-11-24");
    expect(weeks.map((w) => w[0])).toEqual(["2026-11-16", "2026-11-23"]);
    expect(weeks[0]).toHaveLength(7);
    expect(weeks[0]![6]).toBe("2026-11-22");
  });
  it("gives a whole financial year 53 columns at most", () => {
    const weeks = calendarWeeks("2025-04-01", "2026-03-31");
    expect(weeks.length).toBeLessThanOrEqual(53);
    expect(weeks.at(-1)).toContain("2026-03-31");
  });
  it("is empty for a reversed range", () => {
    expect(calendarWeeks("2026-02-01", "2026-01-01")).toEqual([]);
  });
});

describe("intensity", () => {
  it("scales |net| against the largest day, in four steps", () => {
    expect(intensity(0, 0, 100)).toBe(0);
    expect(intensity(0, 3, 100)).toBe("flat");
    expect(intensity(1, 1, 100)).toBe(1);
    expect(intensity(-60, 1, 100)).toBe(3);
    expect(intensity(100, 1, 100)).toBe(4);
  });
});

describe("Heatmap", () => {
  it("labels every day in the range, colours by sign and links days with trades", () => {
    render(
      <MemoryRouter>
        <Heatmap
          from="2026-11-18"
          to="2026-11-20"
          caption="Daily net P&L"
          days={[
            { day: "2026-11-18", net: "-400", trades: 2 },
            { day: "2026-11-20", net: "100", trades: 1 },
          ]}
          hrefFor={(day) => `/trades?from=${day}&to=${day}`}
        />
      </MemoryRouter>,
    );
    const table = screen.getByRole("table", { name: "Daily net P&L" });
    const loss = within(table).getByRole("link", { name: "2026-11-18: −₹400.00, 2 trades" });
    expect(loss).toHaveClass("hm-neg-4");
    expect(loss).toHaveAttribute("href", "/trades?from=2026-11-18&to=2026-11-18");
    expect(within(table).getByRole("link", { name: "2026-11-20: +₹100.00, 1 trade" })).toHaveClass("hm-pos-1");
    expect(within(table).getByRole("img", { name: "2026-11-19: no trades" })).toBeInTheDocument();
    // Days of the week outside the range are drawn blank and say nothing.
    expect(within(table).queryByLabelText(/2026-11-17/)).not.toBeInTheDocument();
    expect(within(table).getAllByRole("rowheader").map((h) => h.textContent)).toEqual([
      "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
    ]);
    expect(within(table).getByRole("columnheader", { name: /Week of 2026-11-16/ })).toBeInTheDocument();
  });

  it("words a day's figures", () => {
    expect(cellLabel("2026-11-20", { day: "2026-11-20", net: 1234, trades: 4 })).toBe("2026-11-20: +₹1,234.00, 4 trades");
    expect(cellLabel("2026-11-21", undefined)).toBe("2026-11-21: no trades");
  });
});
