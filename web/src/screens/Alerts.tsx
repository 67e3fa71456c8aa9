/**
 * One project's alerts and who gets their e-mail. Admins (the org's owners and administrators)
 * switch the default alerts on and off and tune their parameters; everyone sees the values and
 * whether the project's Grafana runs the latest configuration, which is polled (with back-off)
 * while it is being applied. Admins pick the recipients among the verified members; anyone can
 * switch alert e-mail on or off for themselves.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useRef, useState, type SyntheticEvent } from "react";

import {
  getAlerts,
  getRecipients,
  patchAlerts,
  putRecipients,
  type Alert,
  type AlertPatch,
  type AlertSettings,
  type Recipients,
} from "../api/alerts";
import { ApiError, type Me } from "../api/client";
import {
  configState,
  edit,
  enabledOf,
  fieldKey,
  inputOf,
  isDirty,
  newerVersion,
  prepare,
  rangeText,
  withSelf,
  withUnit,
  type AlertDraft,
} from "../alertsDraft";
import { ErrorMessage } from "../components/ErrorMessage";
import { getProjects, keys } from "../data";
import { backoffInterval } from "../poll";
import { Link } from "../router";

/** The most recipients the API takes. */
const MAX_RECIPIENTS = 50;

// A failed push is a change too: the back-off starts again from it.
const pollWhileApplying = backoffInterval<AlertSettings>((a) =>
  a && configState(a.configVersion) === "applying"
    ? `${a.configVersion.desired}/${a.configVersion.applied ?? "none"}/${a.lastConfigError ?? ""}`
    : undefined,
);

const focusSoon = (el: HTMLElement | null) => {
  // After React has rendered the message it moves to.
  window.requestAnimationFrame(() => el?.focus());
};

export function AlertsScreen({ me, projectRef }: { me: Me; projectRef: string }) {
  const client = useQueryClient();
  const verified = me.user !== null;
  const projects = useQuery({
    queryKey: keys.projects,
    queryFn: () => getProjects(client),
  });
  const name = projects.data?.projects.find((p) => p.ref === projectRef)?.name;
  const alerts = useQuery({
    queryKey: keys.alerts(projectRef),
    queryFn: () => getAlerts(projectRef),
    enabled: verified,
    refetchOnWindowFocus: false,
    refetchInterval: pollWhileApplying,
  });
  const noInstance = alerts.error instanceof ApiError && alerts.error.status === 404;

  return (
    <section aria-labelledby="alerts-title">
      <p className="crumbs">
        <Link to="/projects">Projects</Link>
      </p>
      <h1 id="alerts-title" tabIndex={-1}>
        Alerts{name ? ` for ${name}` : ""}
      </h1>
      <p className="lead">
        The alerts the project&apos;s Grafana raises, and who gets them by e-mail. Project{" "}
        <code>{projectRef}</code>.
      </p>
      {!me.user ? (
        <p className="notice">
          To see and change alerts, first <Link to="/identify">identify yourself</Link>.
        </p>
      ) : (
        <>
          {alerts.isPending && <p role="status">Loading alerts…</p>}
          <ErrorMessage error={alerts.error} />
          {noInstance && (
            <p>
              Alerts are set per Grafana. <Link to="/projects">Provision one</Link> for this project
              first.
            </p>
          )}
          {alerts.data && (
            <>
              <ConfigStatus settings={alerts.data} />
              {alerts.data.canEdit ? (
                <AlertForm settings={alerts.data} projectRef={projectRef} />
              ) : (
                <AlertList alerts={alerts.data.alerts} role={me.user.role} org={me.org.name} />
              )}
              <RecipientsSection projectRef={projectRef} projectName={name ?? projectRef} />
            </>
          )}
        </>
      )}
    </section>
  );
}

/** Whether the project's Grafana runs the latest configuration (a live region). */
function ConfigStatus({ settings }: { settings: AlertSettings }) {
  const state = configState(settings.configVersion);
  return (
    <div className="config-status">
      <p className="state" role="status">
        Grafana configuration:{" "}
        <strong className={`badge ${state}`}>
          {state === "applied" ? "Applied" : "Applying…"}
        </strong>
        {state === "applying" && (
          <span className="hint"> Grafana is being updated; this shows when it is done.</span>
        )}
      </p>
      <ErrorMessage
        error={
          settings.lastConfigError
            ? new Error(
                `The last change could not be applied to Grafana: ${settings.lastConfigError}`,
              )
            : undefined
        }
      />
    </div>
  );
}

function AlertForm({ settings, projectRef }: { settings: AlertSettings; projectRef: string }) {
  const client = useQueryClient();
  const id = useId();
  const [draft, setDraft] = useState<AlertDraft>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState<string>();
  const outcome = useRef<HTMLDivElement>(null);

  const save = useMutation({
    mutationFn: (body: AlertPatch) => patchAlerts(projectRef, body),
    onSuccess: (next) => {
      client.setQueryData(keys.alerts(projectRef), next);
      setDraft({});
      setSaved("Saved. Grafana is being updated with the new alert settings.");
      focusSoon(outcome.current);
    },
    onError: () => {
      focusSoon(outcome.current);
    },
  });

  const submit = (e: SyntheticEvent) => {
    e.preventDefault();
    setSaved(undefined);
    save.reset();
    const { patch, errors: invalid } = prepare(settings.alerts, draft);
    setErrors(invalid);
    const first = Object.keys(invalid)[0];
    if (first) {
      document.getElementById(`${id}-${first}`)?.focus();
      return;
    }
    if (Object.keys(patch.alerts).length === 0) {
      setSaved("Nothing to save: no alert was changed.");
      focusSoon(outcome.current);
      return;
    }
    save.mutate(patch);
  };

  const change = (next: AlertDraft) => {
    setDraft(next);
    setSaved(undefined);
  };
  const dirty = isDirty(settings.alerts, draft);

  return (
    <form onSubmit={submit} noValidate aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`} className="section-title">
        Alerts
      </h2>
      <ul className="alerts">
        {settings.alerts.map((a) => (
          <li key={a.id} className="card alert">
            <fieldset>
              <legend>{a.title}</legend>
              <p className="hint" id={`${id}-${a.id}-desc`}>
                {a.description}
              </p>
              <label className="switch">
                <input
                  type="checkbox"
                  role="switch"
                  checked={enabledOf(a, draft)}
                  onChange={(e) => change(edit(draft, a.id, { enabled: e.target.checked }))}
                  aria-describedby={`${id}-${a.id}-desc`}
                />
                <span>Enabled</span>
              </label>
              {a.params.length > 0 && (
                <div className="params">
                  {a.params.map((p) => {
                    const key = fieldKey(a.id, p.name);
                    const field = `${id}-${key}`;
                    const error = errors[key];
                    return (
                      <div key={p.name} className="param">
                        <label htmlFor={field}>{p.label}</label>
                        <span className="with-unit">
                          <input
                            id={field}
                            type="number"
                            inputMode="decimal"
                            min={p.min}
                            max={p.max}
                            step={p.step}
                            value={inputOf(a, p, draft)}
                            onChange={(e) =>
                              change(edit(draft, a.id, { param: p.name, input: e.target.value }))
                            }
                            aria-invalid={error ? true : undefined}
                            aria-describedby={`${field}-range${error ? ` ${field}-err` : ""}`}
                          />
                          {p.unit && <span className="unit">{p.unit}</span>}
                        </span>
                        <span id={`${field}-range`} className="hint">
                          {rangeText(p)} Default {withUnit(p.default, p.unit)}.
                        </span>
                        {error && (
                          <span id={`${field}-err`} className="error field-error">
                            {error}
                          </span>
                        )}
                      </div>
                    );
                  })}
                </div>
              )}
            </fieldset>
          </li>
        ))}
      </ul>
      <div className="actions">
        <button type="submit" className="primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save alerts"}
        </button>
        <button
          type="button"
          onClick={() => {
            change({});
            setErrors({});
          }}
          disabled={!dirty || save.isPending}
        >
          Discard changes
        </button>
      </div>
      <div ref={outcome} tabIndex={-1} className="outcome">
        {saved && (
          <p className="success" role="status">
            {saved}
          </p>
        )}
        <ErrorMessage error={save.error} />
      </div>
    </form>
  );
}

/** The alerts as text, for members who may not change them. */
function AlertList({ alerts, role, org }: { alerts: Alert[]; role: string; org: string }) {
  return (
    <>
      <h2 className="section-title">Alerts</h2>
      <p className="notice">
        Only owners and administrators of {org} can change alerts. Your role is {role}.
      </p>
      <ul className="alerts">
        {alerts.map((a) => (
          <li key={a.id} className="card alert" aria-labelledby={`alert-${a.id}`}>
            <h3 id={`alert-${a.id}`}>
              {a.title}{" "}
              <span className={`badge ${a.enabled ? "on" : "off"}`}>
                {a.enabled ? "On" : "Off"}
              </span>
            </h3>
            <p className="hint">{a.description}</p>
            {a.params.length > 0 && (
              <dl className="summary">
                {a.params.map((p) => (
                  <div key={p.name} className="summary-row">
                    <dt>{p.label}</dt>
                    <dd>{withUnit(p.value, p.unit)}</dd>
                  </div>
                ))}
              </dl>
            )}
          </li>
        ))}
      </ul>
    </>
  );
}

function RecipientsSection({
  projectRef,
  projectName,
}: {
  projectRef: string;
  projectName: string;
}) {
  const client = useQueryClient();
  const recipients = useQuery({
    queryKey: keys.recipients(projectRef),
    queryFn: () => getRecipients(projectRef),
    refetchOnWindowFocus: false,
  });
  const onSaved = (next: Recipients) => {
    client.setQueryData(keys.recipients(projectRef), next);
    // A new recipient list is a new configuration for Grafana: show (and poll) its state.
    client.setQueryData<AlertSettings>(keys.alerts(projectRef), (old) =>
      old ? { ...old, configVersion: newerVersion(old.configVersion, next.configVersion) } : old,
    );
  };
  // Refused (the list changed meanwhile, or a member left): show the list as it is now.
  const onRefused = () => {
    void client.invalidateQueries({ queryKey: keys.recipients(projectRef) });
  };

  return (
    <section aria-labelledby="recipients-title" className="recipients">
      <h2 id="recipients-title" className="section-title">
        Who gets alert e-mail
      </h2>
      {recipients.isPending && <p role="status">Loading members…</p>}
      <ErrorMessage error={recipients.error} />
      {recipients.data &&
        (recipients.data.canEditOthers ? (
          <RecipientForm
            data={recipients.data}
            projectRef={projectRef}
            onSaved={onSaved}
            onRefused={onRefused}
          />
        ) : (
          <RecipientSelf
            data={recipients.data}
            projectRef={projectRef}
            projectName={projectName}
            onSaved={onSaved}
            onRefused={onRefused}
          />
        ))}
    </section>
  );
}

const currentIds = (data: Recipients): string[] => data.recipients.map((r) => r.userId);

/** Admins: tick any verified member, then save the whole list. */
function RecipientForm({
  data,
  projectRef,
  onSaved,
  onRefused,
}: {
  data: Recipients;
  projectRef: string;
  onSaved: (next: Recipients) => void;
  onRefused: () => void;
}) {
  const id = useId();
  const [picked, setPicked] = useState<ReadonlySet<string>>();
  const [message, setMessage] = useState<string>();
  const [invalid, setInvalid] = useState<string>();
  const outcome = useRef<HTMLDivElement>(null);
  const chosen = picked ?? new Set(currentIds(data));

  const save = useMutation({
    mutationFn: (userIds: string[]) => putRecipients(projectRef, userIds),
    onSuccess: (next) => {
      onSaved(next);
      setPicked(undefined);
      const n = next.recipients.length;
      setMessage(
        n === 0
          ? "Saved. Nobody gets alert e-mail for this project now."
          : `Saved. ${n} ${n === 1 ? "member gets" : "members get"} alert e-mail for this project.`,
      );
      focusSoon(outcome.current);
    },
    onError: () => {
      onRefused();
      focusSoon(outcome.current);
    },
  });

  const submit = (e: SyntheticEvent) => {
    e.preventDefault();
    setMessage(undefined);
    setInvalid(undefined);
    save.reset();
    if (chosen.size > MAX_RECIPIENTS) {
      setInvalid(`Pick at most ${MAX_RECIPIENTS} members.`);
      focusSoon(outcome.current);
      return;
    }
    const same =
      chosen.size === data.recipients.length && data.recipients.every((r) => chosen.has(r.userId));
    if (same) {
      setMessage("Nothing to save: the recipients did not change.");
      focusSoon(outcome.current);
      return;
    }
    save.mutate([...chosen]);
  };

  const toggle = (userId: string, on: boolean) => {
    const next = new Set(chosen);
    if (on) next.add(userId);
    else next.delete(userId);
    setPicked(next);
    setMessage(undefined);
  };

  return (
    <form onSubmit={submit} noValidate>
      <p className="lead">
        Tick the members who get an e-mail when an alert of this project fires. Members can also
        switch it on or off for themselves.
      </p>
      <ul className="members recipients-list">
        {data.members.map((m) => {
          const note = `${id}-${m.userId}-note`;
          return (
            <li key={m.userId} className={`card member${m.verified ? "" : " unverified"}`}>
              <label className="check">
                <input
                  type="checkbox"
                  checked={m.verified && chosen.has(m.userId)}
                  disabled={!m.verified || save.isPending}
                  onChange={(e) => toggle(m.userId, e.target.checked)}
                  aria-describedby={note}
                />
                <span>
                  <strong>{m.name}</strong>
                  {m.userId === data.me && " (you)"} <span className="role">{m.role}</span>
                </span>
              </label>
              <span id={note} className="hint">
                {m.verified ? (m.email ?? "") : `${m.name} has not signed in to Supafana yet.`}
              </span>
            </li>
          );
        })}
      </ul>
      <div className="actions">
        <button type="submit" className="primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save recipients"}
        </button>
      </div>
      <div ref={outcome} tabIndex={-1} className="outcome">
        {message && (
          <p className="success" role="status">
            {message}
          </p>
        )}
        <ErrorMessage error={invalid ? new Error(invalid) : save.error} />
      </div>
    </form>
  );
}

/** Non-admins: see the list, and switch alert e-mail on or off for themselves. */
function RecipientSelf({
  data,
  projectRef,
  projectName,
  onSaved,
  onRefused,
}: {
  data: Recipients;
  projectRef: string;
  projectName: string;
  onSaved: (next: Recipients) => void;
  onRefused: () => void;
}) {
  const id = useId();
  const [message, setMessage] = useState<string>();
  const mine = data.recipients.some((r) => r.userId === data.me);
  const save = useMutation({
    mutationFn: (on: boolean) => putRecipients(projectRef, withSelf(currentIds(data), data.me, on)),
    onSuccess: (next) => {
      onSaved(next);
      const on = next.recipients.some((r) => r.userId === next.me);
      setMessage(
        on
          ? `You now get alert e-mail for ${projectName}.`
          : `You no longer get alert e-mail for ${projectName}.`,
      );
    },
    onError: onRefused,
  });

  return (
    <>
      <label className="switch big-switch">
        <input
          type="checkbox"
          role="switch"
          checked={save.isPending ? save.variables : mine}
          aria-busy={save.isPending || undefined}
          onChange={(e) => {
            // Not disabled while saving (that would drop the keyboard focus): ignored instead.
            if (save.isPending) return;
            setMessage(undefined);
            save.mutate(e.target.checked);
          }}
          aria-describedby={`${id}-who`}
        />
        <span>Receive alerts for this project</span>
      </label>
      <p id={`${id}-who`} className="hint">
        Only owners and administrators can choose for other members.
      </p>
      <div aria-live="polite">{message && <p className="success">{message}</p>}</div>
      <ErrorMessage error={save.error} />
      <ul className="members recipients-list" aria-label="Members">
        {data.members.map((m) => (
          <li key={m.userId} className={`card member${m.verified ? "" : " unverified"}`}>
            <span>
              <strong>{m.name}</strong>
              {m.userId === data.me && " (you)"} <span className="role">{m.role}</span>
            </span>
            <span className="hint">
              {!m.verified
                ? `${m.name} has not signed in to Supafana yet.`
                : m.recipient
                  ? "Gets alert e-mail"
                  : "Does not get alert e-mail"}
            </span>
          </li>
        ))}
      </ul>
    </>
  );
}
