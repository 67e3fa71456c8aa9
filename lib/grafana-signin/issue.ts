/**
 * Opening Grafana: a one-time sign-in ticket for one project's Grafana host.
 *
 * The session's org must own the project (checked with Supabase), its instance must be Running,
 * and the user must still be a member: membership and role are read at issue time through the
 * cached Supabase client (members are cached for a minute), so a member removed from the org or
 * demoted gets no new ticket. The ticket (audience = the ref, subject = the Supabase user, their
 * e-mail, name and Grafana role, 60 s, a random id the gateway burns on exchange) is signed with
 * the newest `GRAFANA_SESSION_KEYS` kid; the gateway exchanges it for its own session cookie.
 */
import { randomBytes } from "node:crypto";

import type { InvocationContext } from "@azure/functions";

import type { Session, SessionUser } from "../auth/session.js";
import { conflict, forbidden, notFound } from "../errors.js";
import { getInstance } from "../instances/store.js";
import type { Services } from "../services.js";
import { supabaseFor } from "../supabase/client.js";
import { logEvent } from "../telemetry.js";
import { EXCHANGE_PATH } from "../gateway/signin-njs.js";
import { grafanaRoleFor, signToken, TICKET_TTL_SECONDS, type GrafanaRole } from "./token.js";

export interface IssuedTicket {
  url: string;
  role: GrafanaRole;
  expiresAt: Date;
}

/** Control characters never travel in a claim that ends up in an HTTP header. */
const clean = (s: string, max: number) => s.replace(/[\u0000-\u001f\u007f]/g, "").slice(0, max); // eslint-disable-line no-control-regex

export async function issueGrafanaTicket(
  services: Services,
  session: Session & { user: SessionUser },
  ref: string,
  ctx?: Pick<InvocationContext, "log" | "warn" | "error">,
): Promise<IssuedTicket> {
  const supabase = supabaseFor(services, session.org);
  // Both lists are cached briefly (projects 30 s, members 60 s): a page of "Open Grafana" clicks
  // costs no Management API call; a ref missing from the list is looked up once to be sure.
  const [projects, members] = await Promise.all([supabase.listProjects(), supabase.listMembers()]);
  const belongs = projects.some((p) => p.ref === ref) || (await supabase.projectBelongsToOrg(ref));
  if (!belongs) throw forbidden("This project does not belong to your organization.");
  const member = members.find((m) => m.userId === session.user.id);
  if (!member) {
    throw forbidden("You are no longer a member of this organization.");
  }
  const instance = await getInstance(services, session.org, ref);
  if (!instance) throw notFound("This project has no Grafana instance.");
  if (instance.state !== "Running") {
    throw conflict(
      `Grafana can be opened once the instance is running (it is ${instance.state}).`,
      "instance_not_running",
    );
  }

  const role = grafanaRoleFor(member.role);
  const now = Math.floor(services.clock.now().getTime() / 1000);
  const ticket = signToken(services.config.GRAFANA_SESSION_KEYS, {
    typ: "ticket",
    aud: ref,
    sub: member.userId,
    email: clean(member.email ?? "", 254),
    name: clean(member.name, 200),
    role,
    org: session.org,
    iat: now,
    exp: now + TICKET_TTL_SECONDS,
    jti: randomBytes(18).toString("base64url"),
  });
  if (ctx) {
    logEvent(ctx, "info", "Grafana sign-in ticket issued", {
      event: "grafana.signin.ticket",
      org: session.org,
      ref,
      role,
    });
  }
  const url = `https://${ref}.${services.config.GRAFANA_DOMAIN}${EXCHANGE_PATH}?ticket=${ticket}`;
  return { url, role, expiresAt: new Date((now + TICKET_TTL_SECONDS) * 1000) };
}
