/**
 * Opens a project's Grafana in a new tab, signed in as the current member: the API issues a
 * one-time sign-in link (valid for a minute) that the gateway exchanges for a Grafana session
 * with the member's own role. There is no shared password to show.
 */
import { useId, useState } from "react";

import { api, call } from "../api/client";
import { ErrorMessage } from "./ErrorMessage";

async function signInLink(ref: string): Promise<string> {
  const res = await call(() =>
    api.POST("/api/projects/{ref}/grafana/session", { params: { path: { ref } } }),
  );
  return res.url;
}

export function OpenGrafana({
  projectRef,
  projectName,
}: {
  projectRef: string;
  projectName: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const id = useId();

  const open = async () => {
    setBusy(true);
    setError(undefined);
    // Open the tab within the click (popup blockers allow that), then send it to the link.
    const tab = window.open("about:blank", "_blank");
    try {
      const url = await signInLink(projectRef);
      if (tab) {
        tab.opener = null;
        tab.location.href = url;
      } else {
        window.location.assign(url);
      }
    } catch (err) {
      tab?.close();
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <button
        type="button"
        className="primary"
        onClick={() => void open()}
        disabled={busy}
        aria-describedby={error ? id : undefined}
      >
        {busy ? "Opening…" : "Open Grafana"}
        <span className="sr-only"> for {projectName} (opens in a new tab)</span>
      </button>
      <ErrorMessage error={error} id={id} />
    </>
  );
}
