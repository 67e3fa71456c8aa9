/** Plain words for the API's values. */
import type { InstanceState, Project } from "./api/client";

const SUPABASE_STATUS: Record<string, string> = {
  ACTIVE_HEALTHY: "Active",
  ACTIVE_UNHEALTHY: "Active, unhealthy",
  COMING_UP: "Starting up",
  GOING_DOWN: "Shutting down",
  INACTIVE: "Paused",
  INIT_FAILED: "Failed to start",
  REMOVED: "Removed",
  RESTORING: "Restoring",
  UPGRADING: "Upgrading",
  PAUSING: "Pausing",
  RESTARTING: "Restarting",
  RESIZING: "Resizing",
  UNKNOWN: "Unknown",
};

export const supabaseStatus = (s: string): string =>
  SUPABASE_STATUS[s] ?? s.toLowerCase().replace(/_/g, " ");

export const PROVISION_STEPS: readonly InstanceState[] = [
  "Requested",
  "Deploying",
  "Configuring",
  "Verifying",
  "Running",
];
/** An upgrade or a heal: the host is replaced, its data disk kept. */
export const REPLACE_STEPS: readonly InstanceState[] = [
  "Replacing",
  "Deploying",
  "Configuring",
  "Verifying",
  "Running",
];
export const DELETE_STEPS: readonly InstanceState[] = ["Deleting", "Deleted"];

export function planLabel(plan: NonNullable<Project["instance"]>["plan"]): string {
  return plan === "trial" ? "Trial" : plan === "paid" ? "Paid" : "Free";
}

/** "2 days 4 hours left", "3 hours left", "ended". */
export function timeLeft(until: string | null, now = Date.now()): string {
  if (!until) return "";
  const ms = new Date(until).getTime() - now;
  if (ms <= 0) return "ended";
  const hours = Math.floor(ms / 3_600_000);
  const days = Math.floor(hours / 24);
  const h = hours % 24;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;
  if (days > 0) return `${plural(days, "day")}${h ? ` ${plural(h, "hour")}` : ""} left`;
  if (hours > 0) return `${plural(hours, "hour")} left`;
  return `${plural(Math.max(1, Math.ceil(ms / 60_000)), "minute")} left`;
}

export const dateLabel = (iso: string | null | undefined): string =>
  iso
    ? new Date(iso).toLocaleDateString("en", { year: "numeric", month: "long", day: "numeric" })
    : "";

export function money(amountMinor: number, currency: string): string {
  return new Intl.NumberFormat("en", {
    style: "currency",
    currency: currency.toUpperCase(),
  }).format(amountMinor / 100);
}

/** "0:42" */
export const clock = (seconds: number): string =>
  `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;

/** What went wrong when connecting, by the `connectError` code the callback redirects with. */
export const CONNECT_ERRORS: Record<string, string> = {
  access_denied:
    "You declined access on Supabase, so nothing was connected. Connect again and choose Approve to continue.",
  authorization_failed: "Supabase could not authorize the connection. Try again.",
  invalid_state:
    "The sign-in link was not valid for this browser (it may have been used already). Start again.",
  state_expired: "The sign-in took too long and expired. Start again.",
  exchange_failed: "Supabase did not complete the sign-in. Try again in a moment.",
  no_organization: "Supabase did not grant access to an organization. Pick one when you approve.",
  upstream_error: "Supabase could not be reached. Try again in a moment.",
  invalid_return_to: "That sign-in link was not valid. Start again from here.",
};
