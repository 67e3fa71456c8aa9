/**
 * Sandbox only: what a project's Grafana address (`https://<ref>.<GRAFANA_DOMAIN>`) answers on a
 * laptop. An HTTPS server with a throwaway self-signed certificate for `*.<domain>` shows "Grafana
 * would be here" for every host the sandbox gateway currently routes, and "nothing here" for any
 * other. `*.localhost` names resolve to this machine in browsers, so with the server on port 443
 * the instance URL opens as is; on another port, start Chromium with
 * `--host-resolver-rules="MAP *.<domain> 127.0.0.1:<port>"`.
 */
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";

import { selfSignedCertificate } from "./tls.js";

export interface SandboxGrafanaOptions {
  /** GRAFANA_DOMAIN, e.g. grafana.supafana.localhost. */
  domain: string;
  /** True when the gateway routes this host name (the instance is up). */
  isRouted: (hostname: string) => boolean;
  /** 0 picks a free port. */
  port: number;
  host?: string;
}

export interface SandboxGrafana {
  port: number;
  /** An example URL, e.g. https://<ref>.<domain>:8443 */
  urlFor(ref: string): string;
  close(): Promise<void>;
}

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{margin:0;font-family:system-ui,sans-serif;background:#111217;color:#d8d9da;line-height:1.5}
main{max-width:40rem;margin:12vh auto;padding:2rem;background:#181b1f;border:1px solid #2c3235;border-radius:8px}
h1{color:#fff;font-size:1.6rem;margin-top:0} code{color:#ff9830} .tag{display:inline-block;background:#f55f3e;color:#111;font-weight:700;padding:0 .5rem;border-radius:4px}
</style></head><body><main>${body}</main></body></html>`;
}

export async function startSandboxGrafana(opts: SandboxGrafanaOptions): Promise<SandboxGrafana> {
  const { cert, key } = selfSignedCertificate([`*.${opts.domain}`, opts.domain], 30);
  const suffix = `.${opts.domain}`;
  const server: Server = createServer({ cert, key }, (req, res) => {
    const hostname = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
    const ref = hostname.endsWith(suffix) ? hostname.slice(0, -suffix.length) : "";
    const routed = ref !== "" && opts.isRouted(hostname);
    const headers = {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    };
    if (routed) {
      res.writeHead(200, headers);
      res.end(
        page(
          `Grafana · ${ref}`,
          `<p><span class="tag">Sandbox</span></p>
<h1>Grafana would be here</h1>
<p>This is the address of the Grafana of Supabase project <code>${escapeHtml(ref)}</code>:
<code>https://${escapeHtml(hostname)}</code>. In Azure, the gateway routes it to the project's own
Grafana, with Prometheus scraping the project's metrics and the Supabase dashboard installed.</p>
<p>In Azure you arrive here signed in: the gateway checks the one-time link from "Open Grafana"
and Grafana gets your user, e-mail and the role your Supabase role maps to.</p>`,
        ),
      );
      return;
    }
    res.writeHead(404, headers);
    res.end(
      page(
        "No Grafana here",
        `<h1>No Grafana is routed here</h1><p>The gateway has no route for <code>${escapeHtml(hostname)}</code>:
the instance is not running (yet), or was deleted.</p>`,
      ),
    );
  });
  await new Promise<void>((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolvePromise();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    urlFor: (ref) => `https://${ref}${suffix}${port === 443 ? "" : `:${port}`}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * For `npm start`: the sandbox Grafana on `LOCAL_GRAFANA_PORT`, else on 443 when this process
 * may bind it (instance URLs then open as they are), else on a free port. Never fails the start:
 * without it, only "Open Grafana" has nothing to show.
 */
export async function startLocalSandboxGrafana(
  domain: string,
  isRouted: (hostname: string) => boolean,
  env: Record<string, string | undefined>,
): Promise<{ grafana: SandboxGrafana | undefined; note: string }> {
  const wanted = env.LOCAL_GRAFANA_PORT ? Number(env.LOCAL_GRAFANA_PORT) : 443;
  let grafana: SandboxGrafana;
  try {
    try {
      grafana = await startSandboxGrafana({ domain, isRouted, port: wanted });
    } catch {
      grafana = await startSandboxGrafana({ domain, isRouted, port: 0 });
    }
  } catch (err) {
    return {
      grafana: undefined,
      note: `not started (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`,
    };
  }
  const note =
    grafana.port === 443
      ? `https://*.${domain} (self-signed certificate)`
      : `https://*.${domain}:${grafana.port} (self-signed; for instance links, start Chromium with --host-resolver-rules="MAP *.${domain} 127.0.0.1:${grafana.port}")`;
  return { grafana, note };
}
