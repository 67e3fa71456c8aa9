/**
 * The gateway's Grafana sign-in, as an njs module for nginx (`libnginx-mod-http-js`; written for
 * njs 0.7.x, which Debian 12 ships: ES5 plus `let`-free code, the `crypto`, `fs` and `Buffer`
 * built-ins, `js_set`, `js_var`, `js_content`).
 *
 * - `exchange` (at `/_supafana/session?ticket=…`): verifies the one-time ticket the Function App
 *   signed (HMAC-SHA256, kid, audience = this host's ref, expiry, type), burns its id by creating a
 *   file with `O_EXCL` in the used-tickets directory (atomic across every worker process, so a
 *   ticket works once), then sets the session cookie (host-only, `HttpOnly; Secure; SameSite=Lax`)
 *   signed with the newest key, and redirects to `/`.
 * - `authenticate` (`js_set $supafana_auth`): verifies that cookie on every request, locally
 *   (one HMAC, no I/O), and fills `$supafana_user`, `$supafana_email`, `$supafana_name`, `$supafana_role` for the
 *   auth-proxy headers. It answers "" when the request may pass, else the reason.
 * - `denied`: the page a refused request gets, with a link back to the app.
 *
 * The key set is read when nginx (re)loads its configuration: module top-level code runs once per
 * worker process (as the worker user, so the file is `0640 root:www-data` on the VM), and the key
 * fetcher reloads nginx after writing a new set. The values the script needs are rendered into it as constants, so its bytes
 * (and the content-addressed file name the config refers to) change with them.
 */
import { createHash } from "node:crypto";

import { MAX_SESSION_TTL_SECONDS, SESSION_TTL_SECONDS } from "../grafana-signin/token.js";

export interface SigninScriptOptions {
  /** JSON `{ "<kid>": "<base64 key>" }`, readable by the nginx master (root). */
  keysPath: string;
  /** Directory the worker user may create files in; one empty file per exchanged ticket. */
  usedTicketsDir: string;
  /** Where the "sign in again" link of a refused request points (the app's origin). */
  appUrl: string;
  /** Session cookie lifetime; default {@link SESSION_TTL_SECONDS}, at most 12 h. */
  sessionTtlSeconds?: number;
}

/** The gateway's cookie; `__Host-` makes browsers keep it host-only, Secure, with Path=/. */
export const GATEWAY_SESSION_COOKIE = "__Host-supafana_grafana";
export const EXCHANGE_PATH = "/_supafana/session";
export const DENIED_PATH = "/_supafana/denied";

const PATH_RE = /^\/[A-Za-z0-9._\-/]+$/;

function checkPath(name: string, value: string): string {
  if (!PATH_RE.test(value) || value.split("/").includes("..")) {
    throw new Error(`${name} must be an absolute path of [A-Za-z0-9._-/]`);
  }
  return value;
}

/** Renders the njs module. Every constant goes in through JSON.stringify (valid JS literals). */
export function renderSigninScript(opts: SigninScriptOptions): string {
  const keysPath = checkPath("keysPath", opts.keysPath);
  const usedDir = checkPath("usedTicketsDir", opts.usedTicketsDir);
  const ttl = opts.sessionTtlSeconds ?? SESSION_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 60 || ttl > MAX_SESSION_TTL_SECONDS) {
    throw new Error(`sessionTtlSeconds must be an integer in [60, ${MAX_SESSION_TTL_SECONDS}]`);
  }
  const app = new URL(opts.appUrl);
  if (app.protocol !== "https:" && app.protocol !== "http:") {
    throw new Error("appUrl must be an http(s) URL");
  }
  const appUrl = app.href;
  const c = (v: unknown) => JSON.stringify(v);
  return `// Supafana gateway: Grafana sign-in (generated; see lib/gateway/signin-njs.ts). njs 0.7.x.
var fs = require('fs');
var crypto = require('crypto');

var KEYS_PATH = ${c(keysPath)};
var USED_DIR = ${c(usedDir)};
var APP_URL = ${c(appUrl)};
var SESSION_TTL = ${ttl};
var MAX_TOKEN = 2048;
var COOKIE = ${c(GATEWAY_SESSION_COOKIE)};
var KID_RE = /^[A-Za-z0-9_-]{1,64}$/;
var JTI_RE = /^[A-Za-z0-9_-]{16,64}$/;
var B64URL_RE = /^[A-Za-z0-9_-]+$/;
var SIG_RE = /^[A-Za-z0-9_-]{43}$/;
var REF_RE = /^[a-z]{20}$/;
var ROLES = { Admin: 1, Editor: 1, Viewer: 1 };

// kid -> key bytes; the greatest kid signs the cookies minted here.
var KEYS = {};
var CURRENT = '';
var KEY_ERROR = '';
(function load() {
  try {
    var parsed = JSON.parse(fs.readFileSync(KEYS_PATH, 'utf8'));
    var kids = Object.keys(parsed).sort();
    for (var i = 0; i < kids.length; i++) {
      var kid = kids[i];
      var raw = String(parsed[kid]).replace(/-/g, '+').replace(/_/g, '/');
      var key = Buffer.from(raw, 'base64');
      if (!KID_RE.test(kid) || key.length !== 32) {
        throw new Error('key ' + kid + ' must have a plain kid and decode to 32 bytes');
      }
      KEYS[kid] = key;
      CURRENT = kid;
    }
    if (CURRENT === '') throw new Error('the key set is empty');
  } catch (e) {
    // Fail closed: no key, nothing verifies, every request gets the sign-in page.
    KEYS = {};
    CURRENT = '';
    KEY_ERROR = String(e && e.message ? e.message : e);
  }
})();

function mac(key, text) {
  return crypto.createHmac('sha256', key).update(text).digest('base64url');
}

// Constant-time comparison of two equally long strings.
function same(a, b) {
  if (a.length !== b.length) return false;
  var diff = 0;
  for (var i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function now() {
  return Math.floor(Date.now() / 1000);
}

// The ref this host serves: the first label of a host the routing map knows.
function refOf(r) {
  var ref = String(r.variables.host || '').split('.')[0];
  return REF_RE.test(ref) ? ref : '';
}

function notBefore(r) {
  var v = Number(r.variables.supafana_not_before || 0);
  return isFinite(v) ? v : 0;
}

// Same checks, in the same order, as verifyToken in lib/grafana-signin/token.ts.
function verify(token, typ, aud, nb) {
  if (!token) return { reason: 'missing' };
  if (token.length > MAX_TOKEN) return { reason: 'malformed' };
  var parts = token.split('.');
  if (parts.length !== 3) return { reason: 'malformed' };
  var kid = parts[0];
  var payload = parts[1];
  var sig = parts[2];
  if (!KID_RE.test(kid) || !B64URL_RE.test(payload) || !SIG_RE.test(sig)) {
    return { reason: 'malformed' };
  }
  var key = KEYS.hasOwnProperty(kid) ? KEYS[kid] : undefined;
  if (key === undefined) return { reason: 'unknown_key' };
  if (!same(mac(key, kid + '.' + payload), sig)) return { reason: 'bad_signature' };
  var c;
  try {
    c = JSON.parse(Buffer.from(payload, 'base64url').toString());
  } catch (e) {
    return { reason: 'malformed' };
  }
  if (
    typeof c !== 'object' || c === null ||
    typeof c.aud !== 'string' || typeof c.sub !== 'string' || typeof c.email !== 'string' || typeof c.name !== 'string' ||
    typeof c.org !== 'string' || typeof c.iat !== 'number' || typeof c.exp !== 'number' ||
    !ROLES.hasOwnProperty(c.role)
  ) {
    return { reason: 'malformed' };
  }
  if (c.typ !== typ) return { reason: 'wrong_type' };
  if (c.aud !== aud) return { reason: 'wrong_host' };
  if (c.exp <= now()) return { reason: 'expired' };
  if (c.iat < nb) return { reason: 'revoked' };
  return { claims: c };
}

function cookieValue(r) {
  var header = r.headersIn.Cookie;
  if (!header) return '';
  var parts = String(header).split(';');
  for (var i = 0; i < parts.length; i++) {
    var p = parts[i];
    var eq = p.indexOf('=');
    if (eq > 0 && p.slice(0, eq).trim() === COOKIE) return p.slice(eq + 1).trim();
  }
  return '';
}

// Header values never carry control characters (no header splitting), and stay short.
function headerSafe(s) {
  return String(s).replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 256);
}

function hasIdentityHeader(r) {
  var raw = r.rawHeadersIn;
  for (var i = 0; i < raw.length; i++) {
    if (String(raw[i][0]).toLowerCase().indexOf('x-webauth-') === 0) return true;
  }
  return false;
}

// js_set $supafana_auth: "" lets the request through, anything else is the refusal reason.
function authenticate(r) {
  r.variables.supafana_user = '';
  r.variables.supafana_email = '';
  r.variables.supafana_role = '';
  r.variables.supafana_name = '';
  if (hasIdentityHeader(r)) return 'identity_header';
  var ref = refOf(r);
  if (ref === '') return 'wrong_host';
  var v = verify(cookieValue(r), 'session', ref, notBefore(r));
  if (!v.claims) return v.reason;
  r.variables.supafana_user = headerSafe(v.claims.sub);
  r.variables.supafana_email = headerSafe(v.claims.email);
  r.variables.supafana_role = v.claims.role;
  r.variables.supafana_name = headerSafe(v.claims.name);
  return '';
}

var MESSAGES = {
  missing: 'You are not signed in to this Grafana.',
  malformed: 'Your sign-in link or session is not valid.',
  unknown_key: 'Your session was signed with a key that is no longer accepted.',
  bad_signature: 'Your sign-in link or session is not valid.',
  wrong_type: 'Your sign-in link or session is not valid.',
  wrong_host: 'Your sign-in is for another project.',
  expired: 'Your sign-in link or session has expired.',
  revoked: 'Your session was revoked.',
  used: 'This sign-in link was already used.',
  identity_header: 'Identity headers are set by the gateway, not by the client.',
  unavailable: 'Sign-in is not available right now.'
};

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, function (ch) {
    return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch];
  });
}

function page(r, status, reason) {
  var text = MESSAGES.hasOwnProperty(reason) ? MESSAGES[reason] : MESSAGES.malformed;
  r.headersOut['Content-Type'] = 'text/html; charset=utf-8';
  r.headersOut['Cache-Control'] = 'no-store';
  r.headersOut['X-Supafana-Signin'] = reason;
  r.return(
    status,
    '<!doctype html>\\n<html lang="en"><head><meta charset="utf-8"><title>Sign in to Grafana</title></head>' +
      '<body data-reason="' + escapeHtml(reason) + '"><main><h1>Sign in to Grafana</h1><p>' +
      escapeHtml(text) + '</p><p>Open Grafana again from <a href="' + escapeHtml(APP_URL) +
      '">Supafana</a>.</p></main></body></html>\\n'
  );
}

// The internal location a refused request is rewritten to.
function denied(r) {
  var reason = authenticate(r) || 'missing';
  page(r, reason === 'identity_header' ? 400 : 401, reason);
}

// GET /_supafana/session?ticket=…: one ticket, once, for a session cookie on this host.
function exchange(r) {
  if (KEY_ERROR !== '') {
    r.error('supafana sign-in: no signing keys: ' + KEY_ERROR);
    return page(r, 503, 'unavailable');
  }
  if (r.method !== 'GET' && r.method !== 'HEAD') return page(r, 405, 'malformed');
  var ref = refOf(r);
  if (ref === '') return page(r, 401, 'wrong_host');
  var v = verify(r.args.ticket ? String(r.args.ticket) : '', 'ticket', ref, notBefore(r));
  if (!v.claims) return page(r, 401, v.reason);
  var c = v.claims;
  if (typeof c.jti !== 'string' || !JTI_RE.test(c.jti)) return page(r, 401, 'malformed');
  try {
    // O_EXCL: exactly one request, in any worker, creates the file.
    fs.writeFileSync(USED_DIR + '/' + c.jti, '', { flag: 'wx' });
  } catch (e) {
    if (e && e.code === 'EEXIST') return page(r, 401, 'used');
    r.error('supafana sign-in: cannot record a used ticket: ' + String(e && e.message));
    return page(r, 503, 'unavailable');
  }
  var iat = now();
  var claims = {
    typ: 'session', aud: ref, sub: c.sub, email: c.email, name: c.name, role: c.role, org: c.org,
    iat: iat, exp: iat + SESSION_TTL
  };
  var payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  var signed = CURRENT + '.' + payload;
  var cookie = signed + '.' + mac(KEYS[CURRENT], signed);
  r.headersOut['Set-Cookie'] =
    COOKIE + '=' + cookie + '; Path=/; Max-Age=' + SESSION_TTL + '; HttpOnly; Secure; SameSite=Lax';
  r.headersOut['Cache-Control'] = 'no-store';
  r.return(302, '/');
}

export default { authenticate, exchange, denied };
`;
}

/** Content-addressed file name: a new script never overwrites the one nginx is running. */
export function signinScriptFileName(script: string): string {
  return `signin-${createHash("sha256").update(script, "utf8").digest("hex").slice(0, 16)}.js`;
}
