/**
 * Sets a new Grafana admin password and shows it once. The password lives only in this
 * component's state (never in the query cache or any storage) and is dropped on "Done".
 */
import { useId, useState } from "react";

import { rotateOnce } from "./rotate";
import { ErrorMessage } from "./ErrorMessage";

export function RotatePassword({
  projectRef,
  projectName,
}: {
  projectRef: string;
  projectName: string;
}) {
  const [password, setPassword] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [copied, setCopied] = useState(false);
  const id = useId();

  const rotate = async () => {
    setBusy(true);
    setError(undefined);
    setCopied(false);
    try {
      setPassword(await rotateOnce(projectRef));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const copy = async () => {
    if (!password) return;
    try {
      await navigator.clipboard.writeText(password);
      setCopied(true);
    } catch {
      setError(new Error("The browser did not allow copying; select the password and copy it."));
    }
  };

  if (password) {
    return (
      <div className="secret" role="group" aria-labelledby={`${id}-t`}>
        <p id={`${id}-t`}>
          New Grafana admin password for {projectName} (user <code>admin</code>). It is shown only
          now:
        </p>
        <output className="password" aria-label="New admin password">
          {password}
        </output>
        <div className="actions">
          <button type="button" onClick={() => void copy()}>
            Copy password
          </button>
          <button
            type="button"
            onClick={() => {
              setPassword(undefined);
              setCopied(false);
            }}
          >
            Done
          </button>
        </div>
        <p role="status" className="hint">
          {copied ? "Copied to the clipboard." : ""}
        </p>
        <ErrorMessage error={error} />
      </div>
    );
  }
  return (
    <>
      <button type="button" onClick={() => void rotate()} disabled={busy}>
        {busy ? "Setting a new password…" : "Rotate admin password"}
        <span className="sr-only"> for {projectName}</span>
      </button>
      <ErrorMessage error={error} />
    </>
  );
}
