/** A page that throws while rendering shows an error with a reload, never a blank screen. */
import { Component, type ErrorInfo, type ReactNode } from "react";
import { ErrorState } from "./states";

interface State {
  error: Error | null;
}

export class ErrorBoundary extends Component<{ children: ReactNode }, State> {
  override state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  override componentDidCatch(error: Error, info: ErrorInfo): void {
    console.warn("page failed to render", error, info.componentStack);
  }

  override render() {
    if (this.state.error !== null) {
      return (
        <ErrorState
          title="This page failed to load."
          error={this.state.error}
          onRetry={() => window.location.reload()}
        />
      );
    }
    return this.props.children;
  }
}
