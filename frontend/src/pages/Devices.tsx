/** This user's signed-in browsers: revoke one, sign out everywhere else, sign out here. */
import type { PageProps } from "../App";
import { useLogout, useRevokeOthers, useRevokeSession, useSessions, type SessionInfo } from "../api/auth";
import { formatDateTime } from "../lib/format";
import { errorText, QueryView } from "../ui/states";
import { useToast } from "../ui/toast";

function DeviceRow({ session }: { session: SessionInfo }) {
  const revoke = useRevokeSession();
  const { notify } = useToast();
  return (
    <tr data-testid="device-row" data-current={session.current ? "true" : "false"}>
      <th scope="row">
        {session.device_label}
        {session.current && <span className="badge badge-running"> this browser</span>}
      </th>
      <td>{session.ip ?? "—"}</td>
      <td>{formatDateTime(session.created_at)}</td>
      <td>{formatDateTime(session.last_seen_at)}</td>
      <td>{formatDateTime(session.expires_at)}</td>
      <td>
        {!session.current && (
          <button
            type="button"
            className="ghost"
            disabled={revoke.isPending}
            aria-label={`Sign out ${session.device_label} (last seen ${formatDateTime(session.last_seen_at)})`}
            onClick={() =>
              revoke.mutate(session.handle, {
                onSuccess: () => notify(`Signed out ${session.device_label}.`, "success"),
                onError: (error) => notify(`Could not sign that device out: ${errorText(error)}`, "error"),
              })
            }
          >
            {revoke.isPending ? "Signing out…" : "Sign out"}
          </button>
        )}
      </td>
    </tr>
  );
}

export default function Devices({ status }: PageProps) {
  const sessions = useSessions();
  const revokeOthers = useRevokeOthers();
  const logout = useLogout();
  const { notify } = useToast();
  const others = (sessions.data ?? []).filter((s) => !s.current).length;
  return (
    <section aria-labelledby="devices-title" className="grid">
      <h1 id="devices-title">Devices</h1>
      <p className="muted">
        Browsers signed in as {status.user_name} ({status.broker_id}). Signing a browser out ends its session at
        once; it is asked to sign in on its next action.
      </p>
      <div className="card">
        <QueryView query={sessions} loadingLabel="Loading your devices…">
          {(rows) => (
            <div className="table-wrap">
              <table>
                <caption className="muted" style={{ textAlign: "left", paddingBottom: ".5rem" }}>
                  {rows.length === 1 ? "1 signed-in browser" : `${rows.length} signed-in browsers`}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Device</th>
                    <th scope="col">IP</th>
                    <th scope="col">Signed in</th>
                    <th scope="col">Last seen</th>
                    <th scope="col">Expires</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((s) => (
                    <DeviceRow key={s.handle} session={s} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </QueryView>
      </div>
      <div className="row">
        <button
          type="button"
          className="ghost"
          disabled={others === 0 || revokeOthers.isPending}
          onClick={() =>
            revokeOthers.mutate(undefined, {
              onSuccess: () => notify("Every other browser is signed out.", "success"),
              onError: (error) => notify(`Could not sign the others out: ${errorText(error)}`, "error"),
            })
          }
        >
          Sign out everywhere else
        </button>
        <button
          type="button"
          className="danger"
          disabled={logout.isPending}
          onClick={() =>
            logout.mutate(undefined, {
              onError: (error) => notify(`Sign-out failed: ${errorText(error)}`, "error"),
            })
          }
        >
          Sign out of this browser
        </button>
      </div>
    </section>
  );
}
