/** Connect a Supabase organization (OAuth on Supabase), and why the last attempt failed. */
import { CONNECT_ERRORS } from "../format";
import { useLocation } from "../router";

export function ConnectScreen({ notice }: { notice?: string | undefined }) {
  const { path, search } = useLocation();
  const failed = search.get("connectError");
  // Come back to this page after connecting (without the error we were sent back with).
  const back = new URLSearchParams(search);
  back.delete("connectError");
  const q = back.toString();
  const returnTo = `${path}${q ? `?${q}` : ""}`;
  const login = `/api/auth/login?returnTo=${encodeURIComponent(returnTo)}`;

  return (
    <section className="connect" aria-labelledby="connect-title">
      <h1 id="connect-title" tabIndex={-1}>
        {failed ? "Connecting did not work" : "Grafana for every Supabase project"}
      </h1>
      {notice && !failed && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      {failed ? (
        <p className="error" role="alert">
          {CONNECT_ERRORS[failed] ?? "Connecting to Supabase failed. Try again."}
        </p>
      ) : (
        <p className="lead">
          Connect your Supabase organization to see its projects and give each one a Grafana with
          Prometheus, the Supabase dashboard and alerts, in a few clicks.
        </p>
      )}
      <a className="button primary big" href={login}>
        {failed ? "Try connecting again" : "Connect Supabase organization"}
      </a>
      <p className="hint">
        You will approve access on Supabase, then come back here. Only organization admins can
        approve.
      </p>
    </section>
  );
}
