/**
 * Supabase's OAuth token endpoint (`POST /v1/oauth/token`): the authorization-code exchange and
 * the refresh grant. Form-encoded body, client authentication with HTTP Basic; success is `201`
 * (a `200` is accepted too).
 */
import { z } from "zod";

import { AppError } from "../errors.js";
import type { StoredTokens } from "../installations.js";
import type { Services } from "../services.js";
import { resetSeconds, upstreamRateLimited } from "./rate-limit.js";

const TIMEOUT_MS = 10_000;

const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1),
  expires_in: z.coerce.number().positive(),
});

export type TokenGrant =
  | { grant_type: "authorization_code"; code: string; code_verifier: string; redirect_uri: string }
  | { grant_type: "refresh_token"; refresh_token: string };

/** The token endpoint refused the grant (a 4xx): a bad code or verifier, a revoked grant. */
export class TokenGrantRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "TokenGrantRefused";
  }
}

function basicAuth(services: Services): string {
  const { SUPABASE_CLIENT_ID: id, SUPABASE_CLIENT_SECRET: secret } = services.config;
  // RFC 6749 §2.3.1: both parts are form-encoded before base64.
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;
}

/**
 * Runs one grant. Resolves with the tokens; rejects with `TokenGrantRefused` for a 400/401/403
 * (the caller decides what that means) and with an `AppError` (502, or 503 for a 429) when
 * Supabase cannot answer.
 */
export async function requestTokens(services: Services, grant: TokenGrant): Promise<StoredTokens> {
  let res: Response;
  try {
    res = await fetch(`${services.config.SUPABASE_API_URL}/v1/oauth/token`, {
      method: "POST",
      headers: {
        authorization: basicAuth(services),
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/json",
      },
      body: new URLSearchParams(grant).toString(),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    throw new AppError(
      502,
      "upstream_error",
      "Supabase's token endpoint did not answer.",
      undefined,
      {
        cause: err,
      },
    );
  }
  const body: unknown = await res.json().catch(() => undefined);
  if (res.status === 200 || res.status === 201) {
    const parsed = tokenResponseSchema.safeParse(body);
    if (!parsed.success) {
      throw new AppError(
        502,
        "upstream_error",
        "Supabase's token endpoint answered an unexpected body.",
      );
    }
    const expiresAt = new Date(services.clock.now().getTime() + parsed.data.expires_in * 1000);
    return {
      accessToken: parsed.data.access_token,
      refreshToken: parsed.data.refresh_token,
      expiresAt: expiresAt.toISOString(),
    };
  }
  if (res.status === 400 || res.status === 401 || res.status === 403) {
    const message =
      typeof body === "object" &&
      body !== null &&
      "message" in body &&
      typeof body.message === "string"
        ? body.message
        : `HTTP ${res.status}`;
    throw new TokenGrantRefused(res.status, message);
  }
  if (res.status === 429) throw upstreamRateLimited(resetSeconds(res.headers));
  throw new AppError(502, "upstream_error", `Supabase's token endpoint answered ${res.status}.`);
}
