/**
 * A connected org without the browser: the Supabase simulator approves a grant for the org, the
 * code is exchanged at the token endpoint and the installation is stored, then a session bound
 * to a verified member is created. Used by the provisioning tests and the bench (no vitest here).
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";

import { SESSION_COOKIE, bindUser, startSession } from "../../lib/auth/session.js";
import { redirectUri } from "../../lib/auth/oauth.js";
import { upsertInstallation } from "../../lib/installations.js";
import type { Services } from "../../lib/services.js";
import { requestTokens } from "../../lib/supabase/token-endpoint.js";
import type { SimOrg, SupabaseSimulator } from "../../local/simulators/supabase.js";

export function randomRefs(n: number): string[] {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const out = new Set<string>();
  while (out.size < n) {
    let r = "";
    for (let i = 0; i < 20; i++) r += letters.charAt(Math.floor(Math.random() * 26));
    out.add(r);
  }
  return [...out];
}

export interface ConnectedOrg {
  slug: string;
  org: SimOrg;
  refs: string[];
  userId: string;
  email: string;
  /** `name=value` of the session cookie of a verified user. */
  cookie: { name: string; value: string };
}

export async function connectOrg(
  services: Services,
  supabase: SupabaseSimulator,
  opts: { projects?: number; slug?: string } = {},
): Promise<ConnectedOrg> {
  const slug = opts.slug ?? `prov-${randomUUID().slice(0, 8)}`;
  const userId = randomUUID();
  const email = `${userId.slice(0, 8)}@members.example`;
  const refs = randomRefs(opts.projects ?? 3);
  const org: SimOrg = {
    slug,
    name: `Org ${slug}`,
    members: [{ user_id: userId, user_name: "ada", email, role_name: "Owner", mfa_enabled: false }],
    projects: refs.map((ref, i) => ({
      ref,
      name: `Project ${i + 1}`,
      region: "us-east-1",
      status: "ACTIVE_HEALTHY",
      serviceKey: `sb_secret_${randomBytes(18).toString("base64url")}`,
    })),
  };
  supabase.addOrg(org);

  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const params = new URLSearchParams({
    client_id: services.config.SUPABASE_CLIENT_ID,
    redirect_uri: redirectUri(services),
    response_type: "code",
    code_challenge: challenge,
    code_challenge_method: "S256",
    state: randomUUID(),
  });
  const redirect = new URL(supabase.authorize(params, slug));
  const code = redirect.searchParams.get("code");
  if (!code) throw new Error(`the simulator did not approve: ${redirect.toString()}`);
  const tokens = await requestTokens(services, {
    grant_type: "authorization_code",
    code,
    code_verifier: verifier,
    redirect_uri: redirectUri(services),
  });
  await upsertInstallation(services, { org: slug, name: org.name, tokens });

  const { session, cookie } = await startSession(services, slug);
  await bindUser(services, session.id, { id: userId, name: "ada", role: "Owner" });
  return { slug, org, refs, userId, email, cookie: { name: SESSION_COOKIE, value: cookie.value } };
}

/** The service key the simulator hands out for a project (to look for it where it must not be). */
export function serviceKeyOf(org: SimOrg, ref: string): string {
  const key = org.projects.find((p) => p.ref === ref)?.serviceKey;
  if (!key) throw new Error(`no project ${ref}`);
  return key;
}
