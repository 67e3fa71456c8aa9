/** The sandbox's stand-in for a project's Grafana address (HTTPS, routed hosts only). */
import { request } from "node:https";
import { X509Certificate } from "node:crypto";
import { TLSSocket } from "node:tls";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startSandboxGrafana, type SandboxGrafana } from "../../../local/sandbox-grafana.js";

const DOMAIN = "grafana.sandbox.test";

function get(port: number, host: string): Promise<{ status: number; body: string; san: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/",
        servername: host,
        headers: { host },
        rejectUnauthorized: false,
      },
      (res) => {
        const socket = res.socket;
        if (!(socket instanceof TLSSocket)) throw new Error("not a TLS socket");
        const cert = new X509Certificate(socket.getPeerX509Certificate()?.raw ?? Buffer.alloc(0));
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body, san: cert.subjectAltName ?? "" });
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("sandbox Grafana pages", () => {
  let grafana: SandboxGrafana;
  const routed = new Set([`abcdefghijabcdefghij.${DOMAIN}`]);

  beforeAll(async () => {
    grafana = await startSandboxGrafana({
      domain: DOMAIN,
      isRouted: (h) => routed.has(h),
      port: 0,
    });
  });
  afterAll(async () => {
    await grafana.close();
  });

  it("when a routed instance's host is opened, then it says Grafana would be here, over TLS for *.domain", async () => {
    const res = await get(grafana.port, `abcdefghijabcdefghij.${DOMAIN}`);
    expect(res.status).toBe(200);
    expect(res.body).toContain("Grafana would be here");
    expect(res.body).toContain("abcdefghijabcdefghij");
    expect(res.san).toContain(`DNS:*.${DOMAIN}`);
    expect(grafana.urlFor("abcdefghijabcdefghij")).toBe(
      `https://abcdefghijabcdefghij.${DOMAIN}:${grafana.port}`,
    );
  });

  it("when a host the gateway does not route is opened, then it answers 404 and says so", async () => {
    const res = await get(grafana.port, `zzzzzzzzzzzzzzzzzzzz.${DOMAIN}`);
    expect(res.status).toBe(404);
    expect(res.body).toContain("No Grafana is routed here");
    const foreign = await get(grafana.port, "example.com");
    expect(foreign.status).toBe(404);
  });
});
