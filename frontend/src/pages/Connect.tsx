/**
 * Sign-in: Kite's redirect flow (api key + secret, then the broker's login page), or an access token the
 * user already has. The secret lives only in this form's state until the request is sent; nothing of it is
 * stored in the browser.
 */
import { useEffect, useId, useState, type FormEvent } from "react";
import { Navigate, useNavigate, useSearchParams } from "react-router";
import { useSetAccessToken, useStartRedirectSignIn, useStatus } from "../api/auth";
import { ApiError } from "../api/client";
import { rememberNext, takeNext } from "../session";
import { errorText, Loading } from "../ui/states";
import { ThemeToggle, useTheme } from "../ui/theme";
import "./Connect.css";

const REASONS: Record<string, string> = {
  expired: "Your session has ended. Sign in again to carry on where you were.",
  signed_out: "You have signed out.",
  broker_expired: "Your Kite session has expired. Sign in to Kite again to resume your agents.",
};

const CALLBACK_ERRORS: Record<string, string> = {
  invalid_state: "This sign-in link is no longer valid (it was already used, or it expired). Start again.",
  signin_cancelled: "The sign-in was cancelled at Kite.",
  broker_rejected: "Kite refused the sign-in. Check the API key and secret.",
  broker_unavailable: "Kite could not be reached. Try again in a moment.",
  signin_failed: "The sign-in could not be completed.",
};

type Tab = "redirect" | "token";
type Fields = Record<string, string>;

const API_KEY = /^[A-Za-z0-9._-]{1,64}$/;

export function validateCredentials(fields: Fields, secretField: "api_secret" | "access_token"): Fields {
  const errors: Fields = {};
  const apiKey = (fields["api_key"] ?? "").trim();
  if (!apiKey) errors["api_key"] = "Enter your Kite Connect API key.";
  else if (!API_KEY.test(apiKey)) errors["api_key"] = "An API key has only letters, digits, '.', '_' and '-'.";
  const secret = fields[secretField] ?? "";
  const name = secretField === "api_secret" ? "API secret" : "access token";
  if (!secret.trim()) errors[secretField] = `Enter your ${name}.`;
  else if (secret.length > 256 || /[^\x21-\x7e]/.test(secret)) errors[secretField] = `That is not a valid ${name}.`;
  return errors;
}

/** The API's answer in words a trader can act on. */
export function signInErrorText(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 0) return error.message;
    if (error.status === 429) {
      return `Too many sign-in attempts. ${error.retryAfterS ? `Try again in ${error.retryAfterS} s.` : "Wait a little."}`;
    }
    if (error.status === 502 || error.status === 504) return `Kite could not be reached: ${error.message}`;
    if (error.status === 503) return "The service is briefly unavailable. Try again in a moment.";
  }
  return errorText(error);
}

function fieldErrorsOf(error: unknown): Fields {
  const out: Fields = {};
  if (error instanceof ApiError) for (const f of error.fieldErrors) out[f.field] = f.message;
  return out;
}

function Field({
  name,
  label,
  type = "text",
  value,
  error,
  onChange,
  autoComplete,
}: {
  name: string;
  label: string;
  type?: string;
  value: string;
  error: string | undefined;
  onChange: (value: string) => void;
  autoComplete: string;
}) {
  const id = useId();
  return (
    <label htmlFor={id}>
      {label}
      <input
        id={id}
        name={name}
        type={type}
        value={value}
        autoComplete={autoComplete}
        spellCheck={false}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `${id}-error` : undefined}
        onChange={(e) => onChange(e.target.value)}
      />
      {error && (
        <span id={`${id}-error`} className="field-error">
          {error}
        </span>
      )}
    </label>
  );
}

export default function Connect() {
  const status = useStatus();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const [theme, setTheme] = useTheme();
  const [tab, setTab] = useState<Tab>("redirect");
  const [fields, setFields] = useState<Fields>({ api_key: "", api_secret: "", access_token: "" });
  const [errors, setErrors] = useState<Fields>({});
  const login = useStartRedirectSignIn();
  const setToken = useSetAccessToken();
  const demo = window.tradedeskConfig?.demo === true;

  const next = params.get("next");
  useEffect(() => {
    if (next) rememberNext(next);
  }, [next]);

  if (status.isPending) return <Loading label="Checking your session…" />;
  // Signed in already (and not here to reconnect an expired broker): go where the user was going.
  if (status.data?.authenticated && status.data.broker?.state !== "expired" && params.get("reason") !== "broker_expired") {
    return <Navigate to={takeNext() ?? "/"} replace />;
  }

  const reason = params.get("reason");
  const callbackError = params.get("error");
  const notice = reason ? REASONS[reason] : undefined;
  const failure = callbackError
    ? (params.get("message") ?? CALLBACK_ERRORS[callbackError] ?? "The sign-in failed. Start again.")
    : null;

  const set = (name: string) => (value: string) => {
    setFields((f) => ({ ...f, [name]: value }));
    setErrors((e) => {
      const { [name]: _removed, ...rest } = e;
      return rest;
    });
  };

  const submitRedirect = (event: FormEvent) => {
    event.preventDefault();
    const found = validateCredentials(fields, "api_secret");
    setErrors(found);
    if (Object.keys(found).length > 0) return;
    login.mutate(
      { api_key: (fields["api_key"] ?? "").trim(), api_secret: fields["api_secret"] ?? "" },
      {
        onSuccess: (answer) => {
          // The secret has done its work: it is kept server-side with the pending sign-in, not here.
          setFields((f) => ({ ...f, api_secret: "" }));
          window.location.assign(answer.login_url);
        },
        onError: (error) => setErrors(fieldErrorsOf(error)),
      },
    );
  };

  const submitToken = (event: FormEvent) => {
    event.preventDefault();
    const found = validateCredentials(fields, "access_token");
    setErrors(found);
    if (Object.keys(found).length > 0) return;
    setToken.mutate(
      { api_key: (fields["api_key"] ?? "").trim(), access_token: fields["access_token"] ?? "" },
      {
        onSuccess: () => {
          setFields((f) => ({ ...f, access_token: "" }));
          void navigate(takeNext() ?? "/", { replace: true });
        },
        onError: (error) => setErrors(fieldErrorsOf(error)),
      },
    );
  };

  const pending = login.isPending || setToken.isPending;
  const mutationError = tab === "redirect" ? login.error : setToken.error;

  return (
    <div className="connect">
      <div className="connect-top">
        <span className="brand">tradedesk</span>
        <ThemeToggle theme={theme} onChange={setTheme} />
      </div>
      <main id="main" className="connect-card card">
        <h1>Sign in with your Kite account</h1>
        {notice && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        {failure && (
          <p className="form-error" role="alert">
            {failure}
          </p>
        )}
        <div className="tabs" role="tablist" aria-label="How to sign in">
          {(
            [
              ["redirect", "Kite login"],
              ["token", "Access token"],
            ] as const
          ).map(([value, label]) => (
            <button
              key={value}
              type="button"
              role="tab"
              id={`tab-${value}`}
              aria-selected={tab === value}
              aria-controls={`panel-${value}`}
              onClick={() => {
                setTab(value);
                setErrors({});
              }}
            >
              {label}
            </button>
          ))}
        </div>
        {tab === "redirect" ? (
          <form id="panel-redirect" role="tabpanel" aria-labelledby="tab-redirect" onSubmit={submitRedirect} noValidate>
            <p className="muted">
              Your Kite Connect app's key and secret. You will sign in on Kite's own page and come back here.
            </p>
            <Field name="api_key" label="API key" value={fields["api_key"] ?? ""} error={errors["api_key"]} onChange={set("api_key")} autoComplete="username" />
            <Field
              name="api_secret"
              label="API secret"
              type="password"
              value={fields["api_secret"] ?? ""}
              error={errors["api_secret"]}
              onChange={set("api_secret")}
              autoComplete="current-password"
            />
            {mutationError && (
              <p className="form-error" role="alert">
                {signInErrorText(mutationError)}
              </p>
            )}
            <div className="row">
              <button type="submit" disabled={pending}>
                {login.isPending ? "Opening Kite…" : "Continue to Kite"}
              </button>
              {demo && (
                <button
                  type="button"
                  className="ghost"
                  onClick={() => setFields((f) => ({ ...f, api_key: "tradedesk-demo", api_secret: "tradedesk-demo-secret" }))}
                >
                  Use the demo app
                </button>
              )}
            </div>
            {demo && <p className="muted small">Demo accounts: DEMO01 … DEMO05, password “demo”.</p>}
          </form>
        ) : (
          <form id="panel-token" role="tabpanel" aria-labelledby="tab-token" onSubmit={submitToken} noValidate>
            <p className="muted">Already have today's access token for your app? Paste it here.</p>
            <Field name="api_key" label="API key" value={fields["api_key"] ?? ""} error={errors["api_key"]} onChange={set("api_key")} autoComplete="username" />
            <Field
              name="access_token"
              label="Access token"
              type="password"
              value={fields["access_token"] ?? ""}
              error={errors["access_token"]}
              onChange={set("access_token")}
              autoComplete="off"
            />
            {mutationError && (
              <p className="form-error" role="alert">
                {signInErrorText(mutationError)}
              </p>
            )}
            <button type="submit" disabled={pending}>
              {setToken.isPending ? "Signing in…" : "Sign in"}
            </button>
          </form>
        )}
      </main>
    </div>
  );
}
