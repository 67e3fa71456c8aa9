/**
 * `npm start` end to end: the local host comes up on embedded defaults, answers health, and
 * Ctrl-C leaves nothing running.
 */
import { spawn } from "node:child_process";

import { describe, expect, it } from "vitest";

import { freePort, isListening } from "../../local/ports.js";

describe("npm start (local host)", () => {
  it("when started with no settings, then /api/health answers 200 and SIGINT stops everything", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ["--import", "tsx", "local/host.ts"], {
      env: { ...process.env, PORT: String(port), LOCAL_QUIET: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (code) => resolve(code)),
    );
    try {
      // Polled until it answers. Start-up speed is not a pass condition here (a busy machine
      // stretches it); the bound only ends a start that failed.
      await expect
        .poll(
          async () => {
            try {
              return (await fetch(`http://127.0.0.1:${port}/api/health`)).status;
            } catch {
              return 0; // not up yet
            }
          },
          { timeout: 90_000, interval: 250 },
        )
        .toBe(200)
        .catch((err: unknown) => {
          throw new Error(`the host never answered 200:\n${output}`, { cause: err });
        });

      // Every port the host printed is served by something it started.
      const ports = [...output.matchAll(/:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
      expect(ports.length).toBeGreaterThanOrEqual(6);

      child.kill("SIGINT");
      expect(await exited).toBe(0);
      expect(output).toContain("Nothing left running");
      for (const p of ports) expect(await isListening(p), `port ${p} still open`).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 150_000);
});
