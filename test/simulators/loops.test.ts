import { APIError, LoopsClient, RateLimitExceededError } from "loops";
import { afterEach, describe, expect, it } from "vitest";

import {
  startLoopsSimulator,
  type LoopsSimOptions,
  type LoopsSimulator,
} from "../../local/simulators/loops.js";

const API_KEY = "sim-loops-key";

let sim: LoopsSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function start(extra: Partial<LoopsSimOptions> = {}): Promise<LoopsSimulator> {
  sim = await startLoopsSimulator({ apiKey: API_KEY, ...extra });
  return sim;
}

/** The SDK has no base-URL option; its public `apiRoot` is what the project sets. */
function client(s: LoopsSimulator, apiKey = API_KEY): LoopsClient {
  const c = new LoopsClient(apiKey);
  c.apiRoot = `${s.url}/api/`;
  return c;
}

async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to throw");
}

describe("Loops simulator", () => {
  it("when a transactional email is sent through the SDK, then it succeeds and is recorded", async () => {
    const s = await start();
    const result = await client(s).sendTransactionalEmail({
      transactionalId: "tx-ready",
      email: "Ada@Example.com",
      dataVariables: { projectName: "Production API", url: "https://grafana.example/x" },
    });
    expect(result).toEqual({ success: true });
    expect(s.sent).toHaveLength(1);
    expect(s.sent[0]).toMatchObject({
      transactionalId: "tx-ready",
      email: "Ada@Example.com",
      dataVariables: { projectName: "Production API", url: "https://grafana.example/x" },
    });
    expect(Number.isNaN(Date.parse(s.sent[0]!.at))).toBe(false);
    expect(s.sent[0]!.idempotencyKey).toBeUndefined();
  });

  it("when mails go to several addresses, then to() returns one address's mails, newest last", async () => {
    const s = await start();
    const c = client(s);
    await c.sendTransactionalEmail({ transactionalId: "a", email: "ada@example.com" });
    await c.sendTransactionalEmail({ transactionalId: "b", email: "bob@example.com" });
    await c.sendTransactionalEmail({ transactionalId: "c", email: "ADA@example.com" });
    expect(s.to("ada@example.com").map((m) => m.transactionalId)).toEqual(["a", "c"]);
    expect(s.to("nobody@example.com")).toEqual([]);
    expect(s.sent[0]!.dataVariables).toEqual({});
    s.clear();
    expect(s.sent).toHaveLength(0);
  });

  it("when the API key is wrong, then the SDK throws APIError 401 'Invalid API key' and nothing is sent", async () => {
    const s = await start();
    const err = await thrown(
      client(s, "wrong-key").sendTransactionalEmail({
        transactionalId: "a",
        email: "a@example.com",
      }),
    );
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).statusCode).toBe(401);
    expect((err as APIError).message).toBe("401 - Invalid API key");
    expect(s.sent).toHaveLength(0);
  });

  it("when testApiKey is called, then the right key gets the team name and a wrong key gets 401", async () => {
    const s = await start({ teamName: "Supafana test team" });
    expect(await client(s).testApiKey()).toEqual({ success: true, teamName: "Supafana test team" });
    const err = await thrown(client(s, "nope").testApiKey());
    expect((err as APIError).statusCode).toBe(401);
    expect((err as APIError).json).toMatchObject({ error: "Invalid API key" });
  });

  it("when the same Idempotency-Key is sent twice, then the second request gets 409 and no second mail", async () => {
    const s = await start();
    const c = client(s);
    const send = (key: string) =>
      c.sendTransactionalEmail({
        transactionalId: "tx-code",
        email: "ada@example.com",
        dataVariables: { code: "123456" },
        headers: { "Idempotency-Key": key },
      });
    await send("verify-ada-1");
    const err = await thrown(send("verify-ada-1"));
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).statusCode).toBe(409);
    expect((err as APIError).json).toMatchObject({ success: false });
    expect(s.sent).toHaveLength(1);
    expect(s.sent[0]!.idempotencyKey).toBe("verify-ada-1");
    await send("verify-ada-2");
    expect(s.sent).toHaveLength(2);
  });

  it("when an Idempotency-Key is reused after 24 hours, then the mail is sent again", async () => {
    let t = Date.UTC(2026, 0, 1);
    const s = await start({ now: () => t });
    const c = client(s);
    const send = () =>
      c.sendTransactionalEmail({
        transactionalId: "tx",
        email: "ada@example.com",
        headers: { "Idempotency-Key": "k" },
      });
    await send();
    t += 24 * 60 * 60 * 1000 - 1;
    expect(((await thrown(send())) as APIError).statusCode).toBe(409);
    t += 2;
    await send();
    expect(s.sent.map((m) => m.at)).toEqual([
      "2026-01-01T00:00:00.000Z",
      "2026-01-02T00:00:00.001Z",
    ]);
  });

  it("when an Idempotency-Key is longer than 100 characters, then the request is refused with 400", async () => {
    const s = await start();
    const err = await thrown(
      client(s).sendTransactionalEmail({
        transactionalId: "tx",
        email: "ada@example.com",
        headers: { "Idempotency-Key": "x".repeat(101) },
      }),
    );
    expect((err as APIError).statusCode).toBe(400);
    expect(s.sent).toHaveLength(0);
  });

  it("when a 429 fault is injected, then the SDK throws RateLimitExceededError once and the next send succeeds", async () => {
    const s = await start();
    const c = client(s);
    s.injectFault(429);
    const err = await thrown(
      c.sendTransactionalEmail({ transactionalId: "tx", email: "a@example.com" }),
    );
    expect(err).toBeInstanceOf(RateLimitExceededError);
    expect((err as RateLimitExceededError).limit).toBe(10);
    expect((err as RateLimitExceededError).remaining).toBe(0);
    expect(s.sent).toHaveLength(0);
    await c.sendTransactionalEmail({ transactionalId: "tx", email: "a@example.com" });
    expect(s.sent).toHaveLength(1);
  });

  it("when 500 faults are injected with a count, then that many sends fail with APIError 500", async () => {
    const s = await start();
    const c = client(s);
    s.injectFault(500, 2);
    for (let i = 0; i < 2; i++) {
      const err = await thrown(
        c.sendTransactionalEmail({ transactionalId: "tx", email: "a@example.com" }),
      );
      expect((err as APIError).statusCode).toBe(500);
    }
    await c.sendTransactionalEmail({ transactionalId: "tx", email: "a@example.com" });
    expect(s.sent).toHaveLength(1);
  });

  it("when templates are configured, then an unknown id is 404 and a missing data variable is 400", async () => {
    const s = await start({ templates: { "tx-ready": ["projectName", "url"] } });
    const c = client(s);
    const unknown = await thrown(
      c.sendTransactionalEmail({ transactionalId: "tx-nope", email: "a@example.com" }),
    );
    expect((unknown as APIError).statusCode).toBe(404);
    const missing = await thrown(
      c.sendTransactionalEmail({
        transactionalId: "tx-ready",
        email: "a@example.com",
        dataVariables: { projectName: "P" },
      }),
    );
    expect((missing as APIError).statusCode).toBe(400);
    expect((missing as APIError).json).toMatchObject({ success: false, path: "dataVariables" });
    expect((missing as APIError).message).toMatch(/url/);
    expect(s.sent).toHaveLength(0);
  });

  it("when the email is invalid or a variable has an unsupported type, then the send is refused with 400", async () => {
    const s = await start();
    const c = client(s);
    const badEmail = await thrown(
      c.sendTransactionalEmail({ transactionalId: "tx", email: "not-an-email" }),
    );
    expect((badEmail as APIError).statusCode).toBe(400);
    const badVar = await thrown(
      c.sendTransactionalEmail({
        transactionalId: "tx",
        email: "a@example.com",
        dataVariables: { flag: true as unknown as string },
      }),
    );
    expect((badVar as APIError).statusCode).toBe(400);
    expect(s.sent).toHaveLength(0);
  });

  it("when the SDK's apiRoot lacks the /api/ path, then requests miss the API (404)", async () => {
    const s = await start();
    const c = new LoopsClient(API_KEY);
    c.apiRoot = s.url;
    const err = await thrown(
      c.sendTransactionalEmail({ transactionalId: "tx", email: "a@example.com" }),
    );
    expect((err as APIError).statusCode).toBe(404);
    expect(s.sent).toHaveLength(0);
  });

  it("when responses come back, then they carry the x-ratelimit headers", async () => {
    const s = await start();
    const res = await fetch(`${s.url}/api/v1/api-key`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-ratelimit-limit")).toBe("10");
    expect(res.headers.get("x-ratelimit-remaining")).toBe("9");
  });
});
