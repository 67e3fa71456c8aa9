/**
 * The app's frame: who is connected decides what is shown. No session (or one that ended under
 * us) shows Connect in place of the page, keeping the URL so connecting again comes back here.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type ReactNode } from "react";

import { ApiError, type Me } from "./api/client";
import { ErrorMessage } from "./components/ErrorMessage";
import { getMe, keys, signOut } from "./data";
import { alertsRef, Link, navigate, useLocation } from "./router";
import { AlertsScreen } from "./screens/Alerts";
import { BillingScreen } from "./screens/Billing";
import { ConnectScreen } from "./screens/Connect";
import { IdentifyScreen } from "./screens/Identify";
import { NotificationsScreen } from "./screens/Notifications";
import { ProjectsScreen } from "./screens/Projects";
import { endSession, useSessionEnd } from "./session";

const TITLES: Record<string, string> = {
  "/projects": "Projects",
  "/billing": "Billing",
  "/identify": "Identify yourself",
  "/settings/email": "E-mail notifications",
};

export function App() {
  const { path } = useLocation();
  const ended = useSessionEnd();
  const me = useQuery({
    queryKey: keys.me,
    queryFn: getMe,
    staleTime: Infinity,
    retryOnMount: false,
  });
  const hadSession = useRef(false);
  if (me.data) hadSession.current = true;

  const unauthenticated = me.error instanceof ApiError && me.error.status === 401;
  let title = TITLES[path] ?? (alertsRef(path) ? "Alerts" : "Supafana");
  let body: ReactNode;
  if (ended || unauthenticated) {
    title = "Connect";
    body = (
      <ConnectScreen
        notice={
          ended?.reason === "signed_out"
            ? "You have signed out."
            : hadSession.current
              ? "Your session has ended. Connect again to continue where you were."
              : undefined
        }
      />
    );
  } else if (me.isPending) {
    body = (
      <p className="loading" role="status">
        Loading…
      </p>
    );
  } else if (me.isError) {
    title = "Problem";
    body = (
      <>
        <h1 tabIndex={-1}>Supafana cannot load right now</h1>
        <ErrorMessage error={me.error} />
        <button type="button" onClick={() => void me.refetch()}>
          Try again
        </button>
      </>
    );
  } else {
    body = <Page path={path} me={me.data} />;
  }

  useEffect(() => {
    document.title = title === "Supafana" ? title : `${title} · Supafana`;
  }, [title]);

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <Header me={ended || unauthenticated ? undefined : me.data} />
      <main id="main" tabIndex={-1}>
        {body}
      </main>
    </>
  );
}

function Page({ path, me }: { path: string; me: Me }) {
  useEffect(() => {
    if (path === "/") navigate(me.user ? "/projects" : "/identify", { replace: true });
  }, [path, me.user]);
  // Move focus to the new page's heading, so keyboard and screen-reader users land on it.
  useEffect(() => {
    const h1 = document.querySelector<HTMLElement>("main h1");
    h1?.focus({ preventScroll: true });
  }, [path]);

  const ref = alertsRef(path);
  if (ref) return <AlertsScreen key={ref} me={me} projectRef={ref} />;
  switch (path) {
    case "/":
      return null;
    case "/projects":
      return <ProjectsScreen me={me} />;
    case "/billing":
      return <BillingScreen me={me} />;
    case "/identify":
      return <IdentifyScreen me={me} />;
    case "/settings/email":
      return <NotificationsScreen me={me} />;
    default:
      return (
        <>
          <h1 tabIndex={-1}>Page not found</h1>
          <p>
            There is nothing at this address. Go to <Link to="/projects">your projects</Link>.
          </p>
        </>
      );
  }
}

function Header({ me }: { me: Me | undefined }) {
  const client = useQueryClient();
  const { path } = useLocation();
  const [error, setError] = useState<unknown>();
  const out = async () => {
    try {
      await signOut();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) {
        setError(err);
        return;
      }
    }
    endSession("signed_out");
    client.clear();
    navigate("/", { replace: true });
  };
  return (
    <header className="top">
      <div className="brand">
        <svg aria-hidden="true" viewBox="0 0 32 32" width="28" height="28">
          <rect width="32" height="32" rx="7" fill="#1f6f50" />
          <path
            d="M7 22l6-8 5 5 7-10"
            fill="none"
            stroke="#fff"
            strokeWidth="3"
            strokeLinecap="round"
            strokeLinejoin="round"
          />
        </svg>
        <span>Supafana</span>
      </div>
      {me && (
        <>
          <nav aria-label="Main">
            <ul>
              <li>
                <Link to="/projects" aria-current={path === "/projects" ? "page" : undefined}>
                  Projects
                </Link>
              </li>
              <li>
                <Link to="/billing" aria-current={path === "/billing" ? "page" : undefined}>
                  Billing
                </Link>
              </li>
              {me.user && (
                <li>
                  <Link
                    to="/settings/email"
                    aria-current={path === "/settings/email" ? "page" : undefined}
                  >
                    E-mail
                  </Link>
                </li>
              )}
            </ul>
          </nav>
          <div className="who">
            <span className="org">{me.org.name}</span>
            {me.user ? (
              <span className="user">
                {me.user.name} <span className="role">({me.user.role})</span>
              </span>
            ) : (
              <Link to="/identify">Identify yourself</Link>
            )}
            <button type="button" className="link" onClick={() => void out()}>
              Sign out
            </button>
          </div>
          <ErrorMessage error={error} />
        </>
      )}
    </header>
  );
}
