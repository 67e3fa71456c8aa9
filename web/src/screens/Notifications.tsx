/**
 * The signed-in member's e-mail preferences: a switch per e-mail Supafana sends, saved as it is
 * flipped. The verification code is always sent (it is how a member identifies).
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState } from "react";

import {
  getNotifications,
  patchNotifications,
  type NotificationKey,
  type Notifications,
} from "../api/alerts";
import type { Me } from "../api/client";
import { ErrorMessage } from "../components/ErrorMessage";
import { keys } from "../data";
import { Link } from "../router";

const EMAILS: Record<NotificationKey, { title: string; when: string }> &
  Partial<Record<string, { title: string; when: string }>> = {
  instanceReady: {
    title: "Grafana is ready",
    when: "When a Grafana you provisioned has finished setting up.",
  },
  trialEnding: {
    title: "Trial is ending",
    when: "A few days before a project's free trial ends.",
  },
  paymentFailed: {
    title: "Payment failed",
    when: "When the organization's subscription payment does not go through.",
  },
  instanceDeleted: {
    title: "Grafana deleted",
    when: "When a project's Grafana has been deleted.",
  },
};

const ALWAYS: Record<string, string> = {
  verificationCode:
    "The 6-digit verification code is always sent: it is how you identify yourself.",
};

/** "someNewKey" → "Some new key", for an e-mail this screen has no words for yet. */
const fallbackTitle = (key: string): string => {
  const words = key.replace(/([A-Z])/g, " $1").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
};

/**
 * The preferences by name: the server may know an e-mail this build has no words for yet (it is
 * shown with a title made from its key), so they are looked up by any string.
 */
const byKey = (prefs: Notifications["preferences"]): Partial<Record<string, boolean>> => prefs;

export function NotificationsScreen({ me }: { me: Me }) {
  const prefs = useQuery({
    queryKey: keys.notifications,
    queryFn: getNotifications,
    enabled: me.user !== null,
  });

  return (
    <section aria-labelledby="notifications-title">
      <h1 id="notifications-title" tabIndex={-1}>
        E-mail notifications
      </h1>
      {!me.user ? (
        <p className="notice">
          To choose your e-mails, first <Link to="/identify">identify yourself</Link>.
        </p>
      ) : (
        <>
          <p className="lead">
            The e-mails Supafana sends you{me.user.email ? ` at ${me.user.email}` : ""}. Alert
            e-mail is chosen per project, on each project&apos;s{" "}
            <Link to="/projects">Alerts page</Link>.
          </p>
          {prefs.isPending && <p role="status">Loading your preferences…</p>}
          <ErrorMessage error={prefs.error} />
          {prefs.data && <PreferenceList data={prefs.data} />}
        </>
      )}
    </section>
  );
}

function PreferenceList({ data }: { data: Notifications }) {
  const client = useQueryClient();
  const id = useId();
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<unknown>();
  // Switches flipped and not yet answered: shown as flipped, and still usable (a switch that
  // turned disabled under the keyboard would drop its focus).
  const [flipped, setFlipped] = useState<Record<string, boolean>>({});

  const flip = async (key: string, on: boolean) => {
    setMessage(undefined);
    setError(undefined);
    setFlipped((f) => ({ ...f, [key]: on }));
    try {
      const next = await patchNotifications({ [key]: on });
      const now = byKey(next.preferences)[key] === true;
      // Only this switch's answer: another switch's change may still be on its way.
      client.setQueryData<Notifications>(keys.notifications, (old) =>
        old ? { ...old, preferences: { ...old.preferences, [key]: now } } : next,
      );
      const title = EMAILS[key]?.title ?? fallbackTitle(key);
      setMessage(`Saved: “${title}” e-mail is ${now ? "on" : "off"}.`);
    } catch (err) {
      setError(err);
    } finally {
      setFlipped(({ [key]: _, ...rest }) => rest);
    }
  };
  const keysShown = [
    ...Object.keys(EMAILS).filter((k) => k in data.preferences),
    ...Object.keys(data.preferences).filter((k) => !(k in EMAILS)),
  ];

  return (
    <>
      <ul className="prefs" aria-label="E-mails">
        {keysShown.map((key) => {
          const words = EMAILS[key] ?? { title: fallbackTitle(key), when: "" };
          const on = flipped[key] ?? byKey(data.preferences)[key] === true;
          return (
            <li key={key} className="card pref">
              <label className="switch">
                <input
                  type="checkbox"
                  role="switch"
                  checked={on}
                  onChange={(e) => {
                    if (key in flipped) return;
                    void flip(key, e.target.checked);
                  }}
                  aria-describedby={words.when ? `${id}-${key}` : undefined}
                />
                <span>{words.title}</span>
              </label>
              {words.when && (
                <p id={`${id}-${key}`} className="hint">
                  {words.when}
                </p>
              )}
            </li>
          );
        })}
      </ul>
      <div aria-live="polite">{message && <p className="success">{message}</p>}</div>
      <ErrorMessage error={error} />
      {data.always.length > 0 && (
        <ul className="always">
          {data.always.map((k) => (
            <li key={k}>{ALWAYS[k] ?? `${fallbackTitle(k)} e-mails are always sent.`}</li>
          ))}
        </ul>
      )}
    </>
  );
}
