/**
 * E-mail self-identification. The OAuth grant says which organization connected, not who the
 * person at the keyboard is, so they pick themselves from the org's members and prove it with a
 * 6-digit code mailed to that member's Supabase e-mail (they never type an address).
 *
 * `verifications` rows (PK = org, RK = user id) hold only an HMAC of the code (keyed from
 * `SESSION_SECRET`, over org|user|code), its expiry (10 minutes), the attempts (5 at most, then
 * the code is dead) and the send throttle (one send a minute, five an hour). Every write that
 * decides something is etag-conditional, so concurrent guesses cannot exceed the limit and a code
 * is used once.
 */
import { createHash, createHmac, hkdfSync, randomInt, timingSafeEqual } from "node:crypto";

import { AppError, notFound, tooManyRequests, toError } from "../errors.js";
import { sendMail } from "../mail.js";
import { recordVerifiedMember } from "../notifications/preferences.js";
import type { Services } from "../services.js";
import { getEntity, retryOnConflict, safeKey } from "../storage/tables.js";
import { supabaseFor, type SupabaseMember } from "../supabase/client.js";
import { bindUser, type Session, type SessionUser } from "./session.js";

const CODE_TTL_MS = 10 * 60_000;
const MAX_ATTEMPTS = 5;
const RESEND_AFTER_MS = 60_000;
const SENDS_PER_WINDOW = 5;
const SEND_WINDOW_MS = 60 * 60_000;
const NEVER = new Date(0);

interface VerificationEntity {
  codeHash: string;
  expiresAt: Date;
  attempts: number;
  sendCount: number;
  lastSentAt: Date;
  windowStartedAt: Date;
}

export interface MemberView {
  userId: string;
  name: string;
  role: string;
  email: string | null;
  hasEmail: boolean;
}

export interface CodeSent {
  /** The masked address the code went to. */
  sentTo: string;
  expiresAt: string;
  resendAfterSeconds: number;
}

/** `jane@example.com` → `j***@example.com`. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf("@");
  if (at < 0) return "***";
  const local = email.slice(0, at);
  return `${local.slice(0, 1)}***@${email.slice(at + 1)}`;
}

const table = (services: Services) => services.tables.client("verifications");

function codeHash(services: Services, org: string, userId: string, code: string): Buffer {
  const key = services.memo("verification-key", () =>
    Buffer.from(
      hkdfSync("sha256", services.config.SESSION_SECRET, "", "supafana/verification-code", 32),
    ),
  );
  return createHmac("sha256", key).update(`${org}|${userId}|${code}`).digest();
}

export async function listMemberViews(services: Services, org: string): Promise<MemberView[]> {
  const members = await supabaseFor(services, org).listMembers();
  return members.map((m) => ({
    userId: m.userId,
    name: m.name,
    role: m.role,
    email: m.email ? maskEmail(m.email) : null,
    hasEmail: Boolean(m.email),
  }));
}

async function findMember(
  services: Services,
  org: string,
  userId: string,
): Promise<SupabaseMember> {
  const member = (await supabaseFor(services, org).listMembers()).find((m) => m.userId === userId);
  if (!member) throw notFound("No member of this organization has that id.");
  return member;
}

/** Mails a new code to the member's e-mail, within the resend throttle. */
export async function sendVerificationCode(
  services: Services,
  session: Session,
  userId: string,
): Promise<CodeSent> {
  const org = session.org;
  const member = await findMember(services, org, userId);
  if (!member.email) {
    throw new AppError(
      409,
      "no_email",
      "This member has no e-mail address in Supabase, so they cannot be verified; pick another member or add an e-mail in Supabase.",
    );
  }
  const rk = safeKey(userId);

  // Another send that wins the race makes the re-read throttle.
  const { row, entity, etag, code, now } = await retryOnConflict(
    async () => {
      const row = await getEntity<VerificationEntity>(table(services), org, rk);
      const now = services.clock.now();
      let windowStartedAt = now;
      let sendCount = 0;
      if (row) {
        const wait = row.lastSentAt.getTime() + RESEND_AFTER_MS - now.getTime();
        if (wait > 0)
          throw tooManyRequests(
            "A code was sent a moment ago; wait before asking again.",
            wait / 1000,
          );
        if (now.getTime() - row.windowStartedAt.getTime() < SEND_WINDOW_MS) {
          windowStartedAt = row.windowStartedAt;
          sendCount = row.sendCount;
        }
        if (sendCount >= SENDS_PER_WINDOW) {
          const retry = windowStartedAt.getTime() + SEND_WINDOW_MS - now.getTime();
          throw tooManyRequests(
            "Too many codes were sent for this member; try again later.",
            retry / 1000,
          );
        }
      }
      const code = String(randomInt(0, 1_000_000)).padStart(6, "0");
      const entity = {
        partitionKey: org,
        rowKey: rk,
        codeHash: codeHash(services, org, userId, code).toString("hex"),
        expiresAt: new Date(now.getTime() + CODE_TTL_MS),
        attempts: 0,
        sendCount: sendCount + 1,
        lastSentAt: now,
        windowStartedAt,
      };
      const etag = row
        ? (await table(services).updateEntity(entity, "Replace", { etag: row.etag })).etag
        : (await table(services).createEntity(entity)).etag;
      return { row, entity, etag, code, now };
    },
    {
      rounds: 4,
      exhausted: () =>
        tooManyRequests("A code is being sent right now; wait a moment.", RESEND_AFTER_MS / 1000),
    },
  );

  try {
    const idempotencyKey = `verification-${createHash("sha256").update(`${org}|${userId}|${now.toISOString()}`).digest("hex").slice(0, 40)}`;
    await sendMail(
      services,
      "verificationCode",
      member.email,
      { verificationCode: code },
      idempotencyKey,
    );
  } catch (err) {
    // Nothing was sent: let the member ask again at once (the send still counts for the hour).
    await table(services)
      .updateEntity(
        { partitionKey: org, rowKey: rk, codeHash: "", lastSentAt: row?.lastSentAt ?? NEVER },
        "Merge",
        {
          ...(etag ? { etag } : {}),
        },
      )
      .catch(() => undefined);
    throw new AppError(
      502,
      "upstream_error",
      "The code could not be e-mailed; try again shortly.",
      undefined,
      {
        cause: toError(err),
      },
    );
  }
  return {
    sentTo: maskEmail(member.email),
    expiresAt: entity.expiresAt.toISOString(),
    resendAfterSeconds: RESEND_AFTER_MS / 1000,
  };
}

/**
 * Checks a code and, when it is right, binds the session to the member. Each try counts before
 * the comparison; after `MAX_ATTEMPTS` wrong tries the code is dead until a new one is sent.
 */
export async function confirmVerificationCode(
  services: Services,
  session: Session,
  userId: string,
  code: string,
): Promise<SessionUser> {
  const org = session.org;
  const rk = safeKey(userId);
  const { right, attempts } = await retryOnConflict(
    async () => {
      const row = await getEntity<VerificationEntity>(table(services), org, rk);
      if (!row?.codeHash) {
        throw new AppError(
          400,
          "no_code",
          "No code is pending for this member; ask for one first.",
        );
      }
      if (row.attempts >= MAX_ATTEMPTS) {
        throw new AppError(429, "too_many_attempts", "Too many wrong codes; ask for a new code.", {
          attemptsLeft: 0,
        });
      }
      if (row.expiresAt.getTime() <= services.clock.now().getTime()) {
        throw new AppError(400, "code_expired", "This code has expired; ask for a new one.");
      }
      const attempts = row.attempts + 1;
      const expected = Buffer.from(row.codeHash, "hex");
      const given = codeHash(services, org, userId, code);
      const right = expected.length === given.length && timingSafeEqual(given, expected);
      // Count the try (and, when right, spend the code) only if nobody else touched the row.
      await table(services).updateEntity(
        { partitionKey: org, rowKey: rk, attempts, ...(right ? { codeHash: "" } : {}) },
        "Merge",
        { etag: row.etag },
      );
      return { right, attempts };
      // Every lost race means another try was counted, so after MAX_ATTEMPTS counted tries every
      // round ends in a 429: the rounds only bound a burst of concurrent tries.
    },
    { rounds: 50 },
  );
  if (!right) {
    throw new AppError(400, "invalid_code", "That code is not right.", {
      attemptsLeft: Math.max(0, MAX_ATTEMPTS - attempts),
    });
  }
  const member = await findMember(services, org, userId);
  const user: SessionUser = {
    id: member.userId,
    name: member.name,
    role: member.role,
    emailMasked: member.email ? maskEmail(member.email) : null,
  };
  await bindUser(services, session.id, user);
  await recordVerifiedMember(services, org, user.id);
  return user;
}
