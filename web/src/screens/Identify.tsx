/**
 * Self-identification: pick yourself from the org's members; a 6-digit code goes to the e-mail
 * Supabase has for you (you never type an address); enter it.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type SyntheticEvent } from "react";

import { ApiError, type Me, type Member } from "../api/client";
import { ErrorMessage, errorText } from "../components/ErrorMessage";
import { useCountdown } from "../components/useCountdown";
import { confirmCode, getMembers, keys, sendCode } from "../data";
import { clock } from "../format";
import { navigate } from "../router";

interface Pending {
  member: Member;
  sentTo?: string;
}

export function IdentifyScreen({ me }: { me: Me }) {
  const members = useQuery({ queryKey: keys.members, queryFn: getMembers });
  const [pending, setPending] = useState<Pending>();
  const [resendAt, setResendAt] = useState<number>();
  const [sendError, setSendError] = useState<unknown>();
  const [sending, setSending] = useState<string>();
  const wait = useCountdown(resendAt);

  const send = async (member: Member) => {
    setSending(member.userId);
    setSendError(undefined);
    try {
      const sent = await sendCode(member.userId);
      setPending({ member, sentTo: sent.sentTo });
      setResendAt(Date.now() + sent.resendAfterSeconds * 1000);
    } catch (err) {
      setSendError(err);
      if (err instanceof ApiError && err.status === 429 && err.retryAfter) {
        setResendAt(Date.now() + err.retryAfter * 1000);
        // A code sent a moment ago is still good: let them type it.
        setPending((p) => p ?? { member });
      }
    } finally {
      setSending(undefined);
    }
  };

  return (
    <section aria-labelledby="identify-title">
      <h1 id="identify-title" tabIndex={-1}>
        Identify yourself
      </h1>
      {me.user && (
        <p className="notice" role="status">
          You are identified as {me.user.name}. Pick another member only if that is not you.
        </p>
      )}
      {!pending ? (
        <>
          <p className="lead">
            Pick yourself from the members of {me.org.name}. We e-mail a 6-digit code to the address
            Supabase has for you.
          </p>
          <ErrorMessage error={sendError} />
          {members.isPending && <p role="status">Loading members…</p>}
          <ErrorMessage error={members.error} />
          {members.data && (
            <ul className="members">
              {members.data.map((m) => (
                <li key={m.userId} className="card member">
                  <div>
                    <strong>{m.name}</strong> <span className="role">{m.role}</span>
                    <div className="hint">{m.email ?? "No e-mail address in Supabase"}</div>
                  </div>
                  <button
                    type="button"
                    onClick={() => void send(m)}
                    disabled={sending !== undefined}
                    aria-label={`That's me: ${m.name}`}
                  >
                    {sending === m.userId ? "Sending…" : "That's me"}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </>
      ) : (
        <CodeForm
          pending={pending}
          wait={wait}
          sendError={sendError}
          onResend={() => void send(pending.member)}
          onBack={() => {
            setPending(undefined);
            setSendError(undefined);
          }}
        />
      )}
    </section>
  );
}

function CodeForm({
  pending,
  wait,
  sendError,
  onResend,
  onBack,
}: {
  pending: Pending;
  wait: number;
  sendError: unknown;
  onResend: () => void;
  onBack: () => void;
}) {
  const client = useQueryClient();
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>();
  const [locked, setLocked] = useState(false);
  const [busy, setBusy] = useState(false);
  const id = useId();

  const submit = async (e: SyntheticEvent) => {
    e.preventDefault();
    if (!/^\d{6}$/.test(code)) {
      setError(new Error("Enter the 6 digits from the e-mail."));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await confirmCode(pending.member.userId, code);
      await client.invalidateQueries({ queryKey: keys.me });
      navigate("/projects");
    } catch (err) {
      if (err instanceof ApiError && err.code === "too_many_attempts") setLocked(true);
      setError(err);
      setCode("");
    } finally {
      setBusy(false);
    }
  };

  const left = error instanceof ApiError ? error.details.attemptsLeft : undefined;
  const message =
    error instanceof ApiError && error.code === "invalid_code" && typeof left === "number"
      ? `${error.message} ${left === 0 ? "No tries left: ask for a new code." : `${left} ${left === 1 ? "try" : "tries"} left.`}`
      : error
        ? errorText(error)
        : undefined;

  return (
    <>
      <p className="lead" role="status">
        {pending.sentTo
          ? `We sent a 6-digit code to ${pending.sentTo}. It is valid for 10 minutes.`
          : `Enter the code we sent to ${pending.member.name}'s e-mail.`}
      </p>
      <form className="code" onSubmit={(e) => void submit(e)} noValidate>
        <label htmlFor={`${id}-code`}>6-digit code</label>
        <input
          id={`${id}-code`}
          name="code"
          inputMode="numeric"
          autoComplete="one-time-code"
          pattern="[0-9]{6}"
          maxLength={6}
          value={code}
          onChange={(e) => setCode(e.target.value.replace(/\D/g, ""))}
          aria-invalid={message ? true : undefined}
          aria-describedby={message ? `${id}-err` : undefined}
          disabled={locked}
          autoFocus
        />
        <button type="submit" className="primary" disabled={busy || locked}>
          {busy ? "Checking…" : "Confirm"}
        </button>
      </form>
      {message && (
        <p className="error" role="alert" id={`${id}-err`}>
          {message}
        </p>
      )}
      <ErrorMessage error={sendError} />
      <div className="actions">
        <button
          type="button"
          onClick={() => {
            setLocked(false);
            setError(undefined);
            onResend();
          }}
          disabled={wait > 0}
          aria-describedby={`${id}-wait`}
        >
          Send a new code
        </button>
        <span id={`${id}-wait`} className="hint countdown">
          {wait > 0 ? `You can ask for a new code in ${clock(wait)}.` : ""}
        </span>
        <button type="button" className="link" onClick={onBack}>
          Pick someone else
        </button>
      </div>
    </>
  );
}
