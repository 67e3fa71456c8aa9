/**
 * Whether the session has ended under us (an API call answered 401). The app then shows Connect
 * in place of the page, keeping the URL, so connecting again returns to the same page.
 */
import { useSyncExternalStore } from "react";

export type SessionEnd = { reason: "expired" | "signed_out" } | null;

let ended: SessionEnd = null;
const listeners = new Set<() => void>();

/** The first reason stands: the 401s that follow a sign-out do not turn it into an expiry. */
export function endSession(reason: "expired" | "signed_out"): void {
  if (ended) return;
  ended = { reason };
  for (const l of listeners) l();
}

export function resumeSession(): void {
  ended = null;
  for (const l of listeners) l();
}

export function useSessionEnd(): SessionEnd {
  return useSyncExternalStore(
    (fn) => {
      listeners.add(fn);
      return () => {
        listeners.delete(fn);
      };
    },
    () => ended,
  );
}
