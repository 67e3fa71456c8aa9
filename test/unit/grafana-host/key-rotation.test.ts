import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile, readdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";

import {
  keyRotationOutcome,
  renderKeyRotationScript,
} from "../../../lib/grafana-host/key-rotation.js";
import { promtoolTestRules } from "../../helpers/system-tools.js";

const REF = "abcdefghijklmnopqrst";
const OLD_KEY = "sb_secret_oldOldOldOldOldOldOldOld_12345678";
const NEW_KEY = "sb_secret_newNewNewNewNewNewNewNew_87654321";

/**
 * A stand-in for Prometheus' query API: a "scrape" reads the key file the way Prometheus'
 * password_file does, and the Supabase endpoint accepts only `accepted`.
 */
let server: Server;
let promUrl = "";
let dir = "";
let keyFile = "";
let accepted = "";
const queries: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "key-rotation-"));
  keyFile = join(dir, "supabase-service-key");
  server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const query = url.searchParams.get("query") ?? "";
      queries.push(query);
      const held = (await readFile(keyFile, "utf8").catch(() => "")).trim();
      const up = held === accepted ? 1 : 0;
      const wanted = query.includes("== 1") ? 1 : 0;
      const result =
        url.pathname === "/api/v1/query" && query.includes(`job="supabase-${REF}"`) && up === wanted
          ? [{ metric: { job: `supabase-${REF}` }, value: [Date.now() / 1000, "1"] }]
          : [];
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ status: "success", data: { resultType: "vector", result } }));
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  promUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

function run(script: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile("sh", ["-c", script.join("\n")], (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout });
    });
  });
}

const script = (key: string) =>
  renderKeyRotationScript(REF, key, {
    keyFile,
    prometheusUrl: promUrl,
    reloadCommand: `echo reload >> ${join(dir, "reloads")}`,
    owner: null,
    deadlineSeconds: 30,
    pollSeconds: 1,
  });

describe("the key rotation script, run by sh against a stand-in Prometheus", () => {
  it("when the first scrape with the new key is up, then the file holds the new key, Prometheus reloaded once and the backup is gone", async () => {
    await writeFile(keyFile, OLD_KEY);
    await rm(join(dir, "reloads"), { force: true });
    accepted = NEW_KEY;
    const { code, stdout } = await run(script(NEW_KEY));
    expect(code).toBe(0);
    expect(keyRotationOutcome(stdout)).toEqual({ ok: true });
    expect(await readFile(keyFile, "utf8")).toBe(NEW_KEY);
    expect((await readFile(join(dir, "reloads"), "utf8")).trim().split("\n")).toHaveLength(1);
    expect((await readdir(dir)).sort()).toEqual(["reloads", "supabase-service-key"]);
    expect(
      queries.some((q) =>
        new RegExp(
          `^timestamp\\(up\\{job="supabase-${REF}"\\}\\) > \\d+ and up\\{job="supabase-${REF}"\\} == 1$`,
        ).test(q),
      ),
    ).toBe(true);
  });

  it("when the first scrape with the new key fails, then the previous key is restored, Prometheus reloaded again and the failure reported", async () => {
    await writeFile(keyFile, OLD_KEY);
    await rm(join(dir, "reloads"), { force: true });
    accepted = OLD_KEY;
    const { code, stdout } = await run(script(NEW_KEY));
    expect(code).not.toBe(0);
    const outcome = keyRotationOutcome(stdout);
    expect(outcome.ok).toBe(false);
    expect(outcome).toMatchObject({ message: expect.stringContaining("up == 0") as string });
    expect(await readFile(keyFile, "utf8")).toBe(OLD_KEY);
    expect((await readFile(join(dir, "reloads"), "utf8")).trim().split("\n")).toHaveLength(2);
    expect((await readdir(dir)).sort()).toEqual(["reloads", "supabase-service-key"]);
  });

  it("when the key or options are unsafe, then no script is rendered", () => {
    expect(() => renderKeyRotationScript(REF, "a'b")).toThrow();
    expect(() => renderKeyRotationScript(REF, NEW_KEY, { keyFile: "relative" })).toThrow();
    expect(() => renderKeyRotationScript(REF, NEW_KEY, { reloadCommand: "a\nb" })).toThrow();
    expect(renderKeyRotationScript(REF, NEW_KEY).join("\n")).not.toContain(NEW_KEY);
  });

  it("when the output has no marker, then the outcome says so", () => {
    expect(keyRotationOutcome("")).toEqual({
      ok: false,
      message: "the host did not report an outcome",
    });
  });
});

describe("the script's scrape check under the real promtool", () => {
  /** The PromQL the script sends for `up == value`, with the shell variables filled in. */
  function checkQuery(value: 0 | 1, started: number): string {
    const line = renderKeyRotationScript(REF, NEW_KEY).find((l) =>
      l.includes(`== ${value}")" = 1`),
    );
    const m = /matches "(.*)"\)" = 1/.exec(line ?? "");
    if (!m?.[1]) throw new Error("no check query in the script");
    return m[1]
      .replace(/\\"/g, '"')
      .replace(/\$job/g, `supabase-${REF}`)
      .replace(/\$started/g, String(started));
  }

  it("counts only a scrape that happened after the swap, and tells up from down", () => {
    const series = (values: string) => [
      { series: `up{job="supabase-${REF}",instance="${REF}.supabase.co"}`, values },
    ];
    const labels = `{instance="${REF}.supabase.co", job="supabase-${REF}"}`;
    // Samples at 0 s, 60 s and 120 s; evaluated at 150 s.
    const cases = [
      // Swapped at 90 s, scraped up at 120 s: success.
      { values: "0 0 1", value: 1 as const, started: 90, exp: [{ labels, value: 120 }] },
      // Swapped at 130 s: the up scrape at 120 s was with the old key and does not count.
      { values: "1 1 1", value: 1 as const, started: 130, exp: [] },
      // Swapped at 90 s, the scrape at 120 s failed: the failure query sees it...
      { values: "1 1 0", value: 0 as const, started: 90, exp: [{ labels, value: 120 }] },
      // ...and the success query does not.
      { values: "1 1 0", value: 1 as const, started: 90, exp: [] },
    ];
    const tests = {
      rule_files: [],
      evaluation_interval: "1m",
      tests: cases.map((c) => ({
        interval: "1m",
        input_series: series(c.values),
        promql_expr_test: [
          { expr: checkQuery(c.value, c.started), eval_time: "150s", exp_samples: c.exp },
        ],
      })),
    };
    const file = join(dir, "check.test.yml");
    writeFileSync(file, stringify(tests));
    const result = promtoolTestRules(file);
    expect(result.output).toContain("SUCCESS");
    expect(result.ok).toBe(true);
  });
});
