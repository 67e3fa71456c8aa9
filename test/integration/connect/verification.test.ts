import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { getEntity } from "../../../lib/storage/tables.js";
import type { TestClient } from "../../helpers/client.js";
import {
  addOrg,
  memberIdsOf,
  sentToOf,
  userOf,
  connect,
  type ConnectPlatform,
  errorOf,
  member,
  projectsOf,
  rawTables,
  startConnectPlatform,
} from "./fixture.js";

let t: ConnectPlatform;

beforeAll(async () => {
  t = await startConnectPlatform();
});
afterAll(async () => {
  await t.platform.close();
});
afterEach(() => {
  t.clock.reset();
});

/** A connected org with an owner (with e-mail) and a member without e-mail. */
async function setup() {
  const owner = member({
    user_name: "Jane Owner",
    email: `jane-${Math.random().toString(36).slice(2, 8)}@example.com`,
  });
  const noEmail = member({ user_name: "No Mail", role_name: "Developer" });
  delete noEmail.email;
  const org = addOrg(t.supabase, { members: [owner, noEmail] });
  const client = t.client();
  await connect(client, t.supabase, org.slug);
  return { org, owner, noEmail, client };
}

function lastCode(email: string): string {
  const mails = t.platform.loops!.to(email);
  const code = mails.at(-1)?.dataVariables.verificationCode;
  if (typeof code !== "string") throw new Error(`no code mailed to ${email}`);
  return code;
}

const send = (client: TestClient, userId: string) =>
  client.post("/api/me/verification", { body: { userId } });
const confirm = (client: TestClient, userId: string, code: string) =>
  client.post("/api/me/verification/confirm", { body: { userId, code } });
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0");

describe("GET /api/org/members", () => {
  it("when listed, then e-mails are masked and members without one are flagged", async () => {
    const { owner, noEmail, client } = await setup();
    const res = await client.get("/api/org/members");
    expect(res.status).toBe(200);
    const [domain] = owner.email!.split("@").slice(1);
    expect(res.body).toEqual([
      {
        userId: owner.user_id,
        name: "Jane Owner",
        role: "Owner",
        email: `j***@${domain}`,
        hasEmail: true,
      },
      { userId: noEmail.user_id, name: "No Mail", role: "Developer", email: null, hasEmail: false },
    ]);
    expect(res.text).not.toContain(owner.email);
  });

  it("when there is no session, then it is 401", async () => {
    const res = await t.client().get("/api/org/members");
    expect(res.status).toBe(401);
    expect(errorOf(res).code).toBe("unauthenticated");
  });
});

describe("POST /api/me/verification and /confirm", () => {
  it("when the right code comes back, then the session is bound to that member", async () => {
    const { owner, client } = await setup();
    const sent = await send(client, owner.user_id);
    expect(sent.status).toBe(200);
    expect(sentToOf(sent)).toMatch(/^j\*\*\*@example\.com$/);
    const mail = t.platform.loops!.to(owner.email!).at(-1);
    expect(mail?.transactionalId).toBe(t.services.config.LOOPS_TX_VERIFICATION_CODE);
    const code = lastCode(owner.email!);
    expect(code).toMatch(/^\d{6}$/);

    const ok = await confirm(client, owner.user_id, code);
    expect(ok.status).toBe(200);
    expect(userOf(ok)).toEqual({
      id: owner.user_id,
      name: "Jane Owner",
      email: "j***@example.com",
      role: "Owner",
    });
    const me = await client.get("/api/me");
    expect(userOf(me)).toEqual({
      id: owner.user_id,
      name: "Jane Owner",
      email: "j***@example.com",
      role: "Owner",
    });

    // The code is single use.
    const replay = await confirm(client, owner.user_id, code);
    expect(replay.status).toBe(400);
    expect(errorOf(replay).code).toBe("no_code");
  });

  it("when the member has no e-mail, then it is a clear 409 and nothing is sent", async () => {
    const { noEmail, client } = await setup();
    const mails = t.platform.loops!.sent.length;
    const res = await send(client, noEmail.user_id);
    expect(res.status).toBe(409);
    expect(errorOf(res).code).toBe("no_email");
    expect(errorOf(res).message).toMatch(/no e-mail/);
    expect(t.platform.loops!.sent.length).toBe(mails);
  });

  it("when a wrong code is tried 5 times, then the code is locked, even for the right code", async () => {
    const { owner, client } = await setup();
    await send(client, owner.user_id);
    const code = lastCode(owner.email!);
    for (let i = 1; i <= 5; i++) {
      const res = await confirm(client, owner.user_id, wrong(code));
      expect(res.status).toBe(400);
      expect(errorOf(res).code).toBe("invalid_code");
      expect(errorOf(res).details?.attemptsLeft).toBe(5 - i);
    }
    const locked = await confirm(client, owner.user_id, code);
    expect(locked.status).toBe(429);
    expect(errorOf(locked).code).toBe("too_many_attempts");
    expect(userOf(await client.get("/api/me"))).toBeNull();
  });

  it("when wrong codes are tried concurrently, then no more than 5 are ever counted", async () => {
    const { owner, client } = await setup();
    await send(client, owner.user_id);
    const code = lastCode(owner.email!);
    const results = await Promise.all(
      Array.from({ length: 12 }, () => confirm(client, owner.user_id, wrong(code))),
    );
    expect(results.filter((r) => r.status === 400)).toHaveLength(5);
    expect(results.filter((r) => r.status === 429)).toHaveLength(7);
    expect((await confirm(client, owner.user_id, code)).status).toBe(429);
  });

  it("when a code is asked for again within a minute, then it is throttled; after a minute it is sent", async () => {
    const { owner, client } = await setup();
    expect((await send(client, owner.user_id)).status).toBe(200);
    const again = await send(client, owner.user_id);
    expect(again.status).toBe(429);
    expect(Number(again.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(t.platform.loops!.to(owner.email!)).toHaveLength(1);
    t.clock.advance(61_000);
    expect((await send(client, owner.user_id)).status).toBe(200);
    expect(t.platform.loops!.to(owner.email!)).toHaveLength(2);
  });

  it("when five codes were sent within the hour, then a sixth waits for the hour to pass", async () => {
    const { owner, client } = await setup();
    for (let i = 0; i < 5; i++) {
      expect((await send(client, owner.user_id)).status).toBe(200);
      t.clock.advance(61_000);
    }
    const sixth = await send(client, owner.user_id);
    expect(sixth.status).toBe(429);
    t.clock.advance(60 * 60_000);
    expect((await send(client, owner.user_id)).status).toBe(200);
  });

  it("when the code is older than 10 minutes, then it is refused as expired", async () => {
    const { owner, client } = await setup();
    await send(client, owner.user_id);
    const code = lastCode(owner.email!);
    t.clock.advance(10 * 60_000 + 1000);
    const res = await confirm(client, owner.user_id, code);
    expect(res.status).toBe(400);
    expect(errorOf(res).code).toBe("code_expired");
  });

  it("when a new code is sent, then the previous one no longer works", async () => {
    const { owner, client } = await setup();
    await send(client, owner.user_id);
    const first = lastCode(owner.email!);
    t.clock.advance(61_000);
    await send(client, owner.user_id);
    const second = lastCode(owner.email!);
    if (first !== second) expect((await confirm(client, owner.user_id, first)).status).toBe(400);
    expect((await confirm(client, owner.user_id, second)).status).toBe(200);
  });

  it("when the input is malformed, then it is a 400 before any I/O", async () => {
    const { owner, client } = await setup();
    for (const body of [
      {},
      { userId: "../../x" },
      { userId: owner.user_id, code: "12345" },
      { userId: owner.user_id, code: "abcdef" },
    ]) {
      const path = "code" in body ? "/api/me/verification/confirm" : "/api/me/verification";
      const res = await client.post(path, { body });
      expect(res.status).toBe(400);
      expect(errorOf(res).code).toBe("validation_failed");
    }
    const notJson = await client.post("/api/me/verification", {
      body: "{not json",
      headers: { "content-type": "application/json" },
    });
    expect(notJson.status).toBe(400);
  });

  it("when the Origin is foreign, then sending is refused", async () => {
    const { owner, client } = await setup();
    const res = await client.post("/api/me/verification", {
      body: { userId: owner.user_id },
      headers: { origin: "https://evil.example" },
    });
    expect(res.status).toBe(403);
    expect(errorOf(res).code).toBe("csrf_origin_mismatch");
  });

  it("when the code is stored, then the table holds only its hash", async () => {
    const { org, owner, client } = await setup();
    await send(client, owner.user_id);
    const code = lastCode(owner.email!);
    const row = await getEntity<{ codeHash: string; attempts: number }>(
      t.services.tables.client("verifications"),
      org.slug,
      owner.user_id,
    );
    expect(row?.codeHash).toMatch(/^[0-9a-f]{64}$/);
    const raw = await rawTables(t.services, ["verifications", "sessions"]);
    expect(raw).not.toContain(`"${code}"`);
    expect(raw).not.toContain(owner.email);
  });
});

describe("org isolation", () => {
  it("when a session of another org asks, then it sees only its own org and cannot verify as this org's member", async () => {
    const a = await setup();
    const b = await setup();
    const projects = await b.client.get("/api/projects");
    const refsB = projectsOf(projects).map((p) => p.ref);
    expect(refsB.sort()).toEqual(b.org.projects.map((p) => p.ref).sort());
    expect(refsB).not.toContain(a.org.projects[0]!.ref);

    const members = await b.client.get("/api/org/members");
    expect(memberIdsOf(members)).not.toContain(a.owner.user_id);

    const mails = t.platform.loops!.to(a.owner.email!).length;
    const res = await send(b.client, a.owner.user_id);
    expect(res.status).toBe(404);
    expect(t.platform.loops!.to(a.owner.email!)).toHaveLength(mails);

    // Even with A's real code, B's session cannot claim A's member.
    await send(a.client, a.owner.user_id);
    const code = lastCode(a.owner.email!);
    const claim = await confirm(b.client, a.owner.user_id, code);
    expect(claim.status).toBe(400);
    expect((await b.client.get("/api/me")).body).toEqual({
      org: { slug: b.org.slug, name: b.org.name },
      user: null,
    });
    expect((await confirm(a.client, a.owner.user_id, code)).status).toBe(200);
  });
});
