/**
 * Server-side sessions. The row in the `sessions` table is the session; the cookie only carries
 * its id, signed with `SESSION_SECRET` (jose, HS256) so a forged or tampered cookie is refused
 * before any I/O. Expiry slides with use up to an absolute cap; logout deletes the row.
 */
import { randomBytes } from "node:crypto";

import type { Cookie, HttpRequest } from "@azure/functions";
import { SignJWT, jwtVerify } from "jose";

import { AppError, statusOf } from "../errors.js";
import type { Services } from "../services.js";
import { deleteExpiredRows, getEntity } from "../storage/tables.js";

export const SESSION_COOKIE = "__Host-supafana_session";
const IDLE_MS = 7 * 24 * 3600_000;
const ABSOLUTE_MS = 30 * 24 * 3600_000;
/** Sliding expiry is written back at most this often (one write per active user per window). */
const TOUCH_EVERY_MS = 10 * 60_000;

export interface SessionUser {
  id: string;
  name: string;
  role: string;
  /** The member's e-mail, masked (`j***@example.com`), for display; null when they have none. */
  emailMasked?: string | null;
}

export interface Session {
  id: string;
  org: string;
  user: SessionUser | null;
  createdAt: Date;
  expiresAt: Date;
}

interface SessionEntity {
  partitionKey: string;
  rowKey: string;
  org: string;
  userId?: string;
  userName?: string;
  userRole?: string;
  userEmailMasked?: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
  absoluteExpiresAt: Date;
}

function key(services: Services): Uint8Array {
  return services.memo("session-key", () =>
    new TextEncoder().encode(services.config.SESSION_SECRET),
  );
}

/** Our cookies: host-only, HttpOnly, Secure, SameSite=Lax (see the design's CSRF rules). */
export function appCookie(name: string, value: string, maxAgeSeconds: number): Cookie {
  return {
    name,
    value,
    path: "/",
    httpOnly: true,
    secure: true,
    sameSite: "Lax",
    maxAge: maxAgeSeconds,
  };
}

export function clearedSessionCookie(): Cookie {
  return appCookie(SESSION_COOKIE, "", 0);
}

export function readCookie(req: HttpRequest, name: string): string | undefined {
  const header = req.headers.get("cookie");
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

const toSession = (e: SessionEntity): Session => ({
  id: e.partitionKey,
  org: e.org,
  user: e.userId
    ? {
        id: e.userId,
        name: e.userName ?? "",
        role: e.userRole ?? "",
        emailMasked: e.userEmailMasked || null,
      }
    : null,
  createdAt: e.createdAt,
  expiresAt: e.expiresAt,
});

/** Creates a session for an org and returns it with the cookie to set. */
export async function startSession(
  services: Services,
  org: string,
): Promise<{ session: Session; cookie: Cookie }> {
  const id = randomBytes(32).toString("base64url");
  const now = services.clock.now();
  const entity: SessionEntity = {
    partitionKey: id,
    rowKey: "",
    org,
    createdAt: now,
    lastSeenAt: now,
    expiresAt: new Date(now.getTime() + IDLE_MS),
    absoluteExpiresAt: new Date(now.getTime() + ABSOLUTE_MS),
  };
  await services.tables.client("sessions").createEntity(entity);
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(id)
    .setIssuedAt(Math.floor(now.getTime() / 1000))
    .setExpirationTime(Math.floor(entity.absoluteExpiresAt.getTime() / 1000))
    .setAudience("supafana-session")
    .sign(key(services));
  return {
    session: toSession(entity),
    cookie: appCookie(SESSION_COOKIE, token, ABSOLUTE_MS / 1000),
  };
}

async function sessionIdFrom(services: Services, req: HttpRequest): Promise<string | undefined> {
  const token = readCookie(req, SESSION_COOKIE);
  if (!token) return undefined;
  try {
    const { payload } = await jwtVerify(token, key(services), {
      algorithms: ["HS256"],
      audience: "supafana-session",
      currentDate: services.clock.now(),
    });
    return typeof payload.sub === "string" ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}

/** The request's live session, or undefined. Extends the idle expiry now and then. */
export async function readSession(
  services: Services,
  req: HttpRequest,
): Promise<Session | undefined> {
  const id = await sessionIdFrom(services, req);
  if (!id) return undefined;
  const table = services.tables.client("sessions");
  const entity = await getEntity<SessionEntity>(table, id, "");
  if (!entity) return undefined;
  const now = services.clock.now();
  if (
    entity.expiresAt.getTime() <= now.getTime() ||
    entity.absoluteExpiresAt.getTime() <= now.getTime()
  ) {
    await table.deleteEntity(id, "").catch(() => undefined);
    return undefined;
  }
  if (now.getTime() - entity.lastSeenAt.getTime() > TOUCH_EVERY_MS) {
    const expiresAt = new Date(
      Math.min(now.getTime() + IDLE_MS, entity.absoluteExpiresAt.getTime()),
    );
    try {
      await table.updateEntity(
        { partitionKey: id, rowKey: "", lastSeenAt: now, expiresAt },
        "Merge",
      );
    } catch (err) {
      if (statusOf(err) === 404) return undefined; // ended meanwhile (logout)
      throw err;
    }
    entity.expiresAt = expiresAt;
  }
  return toSession(entity);
}

export async function requireSession(services: Services, req: HttpRequest): Promise<Session> {
  const session = await readSession(services, req);
  if (!session)
    throw new AppError(401, "unauthenticated", "Connect your Supabase organization first.");
  return session;
}

/** A session whose user proved who they are with an e-mailed code. */
export async function requireVerifiedUser(
  services: Services,
  req: HttpRequest,
): Promise<Session & { user: SessionUser }> {
  const session = await requireSession(services, req);
  if (!session.user) {
    throw new AppError(
      403,
      "verification_required",
      "Identify yourself as a member of the organization first (POST /api/me/verification).",
    );
  }
  return session as Session & { user: SessionUser };
}

export async function bindUser(
  services: Services,
  sessionId: string,
  user: SessionUser,
): Promise<void> {
  try {
    await services.tables.client("sessions").updateEntity(
      {
        partitionKey: sessionId,
        rowKey: "",
        userId: user.id,
        userName: user.name,
        userRole: user.role,
        userEmailMasked: user.emailMasked ?? "",
      },
      "Merge",
    );
  } catch (err) {
    if (statusOf(err) === 404)
      throw new AppError(401, "unauthenticated", "The session has ended; sign in again.");
    throw err;
  }
}

/** Deletes sessions that ended before `cutoff` (at most `max`); returns how many. */
export const purgeExpiredSessions = (services: Services, cutoff: Date, max: number) =>
  deleteExpiredRows(services.tables.client("sessions"), cutoff, max);

export async function endSession(services: Services, sessionId: string): Promise<void> {
  await services.tables
    .client("sessions")
    .deleteEntity(sessionId, "")
    .catch(() => undefined);
}
