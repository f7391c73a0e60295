/** Routes and the frame around every signed-in page: navigation, theme, connectivity, broker banner. */
import { useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, type ComponentType, type ReactNode } from "react";
import {
  BrowserRouter,
  Link,
  NavLink,
  Outlet,
  Route,
  Routes,
  useLocation,
  useNavigate,
  useOutletContext,
} from "react-router";
import { authKeys, useLogout, type AuthStatus } from "./api/auth";
import { EventStreamProvider, useEventStream, useLiveMessages, type Connectivity } from "./api/events";
import { connectPath, rememberNext, RequireSession, takeNext, UnauthorizedRedirect } from "./session";
import { ErrorState, Loading } from "./ui/states";
import { ThemeToggle, useTheme } from "./ui/theme";
import { ToastProvider, useToast } from "./ui/toast";
import { ErrorBoundary } from "./ui/ErrorBoundary";

export interface PageProps {
  status: AuthStatus;
}

const Connect = lazy(() => import("./pages/Connect"));
const Dashboard = lazy(() => import("./pages/Dashboard"));
const Trades = lazy(() => import("./pages/Trades"));
const Positions = lazy(() => import("./pages/Positions"));
const LiveTrader = lazy(() => import("./pages/LiveTrader"));
const Parameters = lazy(() => import("./pages/Parameters"));
const Devices = lazy(() => import("./pages/Devices"));

const NAV: { to: string; label: string }[] = [
  { to: "/", label: "Dashboard" },
  { to: "/trades", label: "Trades" },
  { to: "/positions", label: "Positions" },
  { to: "/live", label: "Live trader" },
  { to: "/parameters", label: "Parameters" },
  { to: "/devices", label: "Devices" },
];

const CONNECTIVITY_TEXT: Record<Connectivity, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

function ConnectivityIndicator() {
  const { connectivity, reconnect } = useEventStream();
  return (
    <span className={`connectivity connectivity-${connectivity}`} data-testid="connectivity">
      <span className="dot" aria-hidden="true" />
      <span>{CONNECTIVITY_TEXT[connectivity]}</span>
      {connectivity === "offline" && (
        <button type="button" className="link" onClick={reconnect}>
          Retry
        </button>
      )}
    </span>
  );
}

function BrokerBanner({ status }: { status: AuthStatus }) {
  const navigate = useNavigate();
  const location = useLocation();
  if (status.broker?.state !== "expired") return null;
  const reconnect = () => {
    const here = location.pathname + location.search;
    rememberNext(here);
    void navigate(connectPath("broker_expired", here));
  };
  return (
    <div className="banner banner-warn" role="alert">
      <span>Your Kite session has expired, so your agents are paused. Sign in to Kite again to resume them.</span>
      <button type="button" onClick={reconnect}>
        Reconnect
      </button>
    </div>
  );
}

function Frame({ status, children }: { status: AuthStatus; children: ReactNode }) {
  const [theme, setTheme] = useTheme();
  const logout = useLogout();
  const { notify } = useToast();
  const queryClient = useQueryClient();
  useLiveMessages((message) => {
    if (message.kind === "agent" && message.data.reason?.startsWith("broker_")) {
      void queryClient.invalidateQueries({ queryKey: authKeys.status });
    }
  });
  const signOut = () =>
    logout.mutate(undefined, { onError: (error) => notify(`Sign-out failed: ${error.message}`, "error") });
  return (
    <div className="app">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          tradedesk
        </Link>
        <nav aria-label="Main">
          {NAV.map((item) => (
            <NavLink key={item.to} to={item.to} end={item.to === "/"}>
              {item.label}
            </NavLink>
          ))}
        </nav>
        <div className="topbar-right">
          <ConnectivityIndicator />
          <span className="who" title={status.email ?? undefined}>
            {status.user_name} <span className="muted">({status.broker_id})</span>
          </span>
          <ThemeToggle theme={theme} onChange={setTheme} />
          <button type="button" className="ghost" onClick={signOut} disabled={logout.isPending}>
            Sign out
          </button>
        </div>
      </header>
      <BrokerBanner status={status} />
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}

/** After the broker's redirect lands on "/", go back to where the user was when they had to sign in. */
function ReturnAfterSignIn() {
  const navigate = useNavigate();
  useEffect(() => {
    const next = takeNext();
    if (next !== null && next !== "/") void navigate(next, { replace: true });
  }, [navigate]);
  return null;
}

/** The signed-in frame, kept mounted across pages so the event stream stays open while the user moves. */
function SignedIn() {
  return (
    <RequireSession>
      {(status) => (
        <EventStreamProvider enabled>
          <ReturnAfterSignIn />
          <Frame status={status}>
            <ErrorBoundary>
              <Suspense fallback={<Loading />}>
                <Outlet context={status} />
              </Suspense>
            </ErrorBoundary>
          </Frame>
        </EventStreamProvider>
      )}
    </RequireSession>
  );
}

function Page({ page: Component }: { page: ComponentType<PageProps> }) {
  const status = useOutletContext<AuthStatus>();
  return <Component status={status} />;
}

function NotFound() {
  return <ErrorState title="Page not found." error={new Error("There is no page at this address.")} />;
}

export function AppRoutes() {
  return (
    <>
      <UnauthorizedRedirect />
      <Routes>
        <Route
          path="/connect"
          element={
            <Suspense fallback={<Loading />}>
              <Connect />
            </Suspense>
          }
        />
        <Route element={<SignedIn />}>
          <Route path="/" element={<Page page={Dashboard} />} />
          <Route path="/trades" element={<Page page={Trades} />} />
          <Route path="/positions" element={<Page page={Positions} />} />
          <Route path="/live" element={<Page page={LiveTrader} />} />
          <Route path="/parameters" element={<Page page={Parameters} />} />
          <Route path="/devices" element={<Page page={Devices} />} />
          <Route path="*" element={<NotFound />} />
        </Route>
      </Routes>
    </>
  );
}

export function App() {
  return (
    <ToastProvider>
      <BrowserRouter>
        <AppRoutes />
      </BrowserRouter>
    </ToastProvider>
  );
}
