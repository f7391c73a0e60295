import { act, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ToastProvider, useToast } from "./toast";

function Notifier({ kind }: { kind: "success" | "error" }) {
  const { notify } = useToast();
  return (
    <button type="button" onClick={() => notify(`a ${kind}`, kind)}>
      notify
    </button>
  );
}

afterEach(() => vi.useRealTimers());

describe("toasts", () => {
  it("a notice goes away by itself after a few seconds; an error stays until dismissed", () => {
    vi.useFakeTimers();
    render(
      <ToastProvider>
        <Notifier kind="success" />
        <Notifier kind="error" />
      </ToastProvider>,
    );
    const [ok, failed] = screen.getAllByRole("button", { name: "notify" });
    act(() => {
      ok!.click();
      failed!.click();
    });
    expect(screen.getByText("a success")).toBeInTheDocument();
    act(() => void vi.advanceTimersByTime(5100));
    expect(screen.queryByText("a success")).toBeNull();
    expect(screen.getByText("a error")).toBeInTheDocument();
  });
});
