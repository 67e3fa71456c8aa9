/**
 * Operator routes through the local function host over HTTP: the admin key is enforced by the
 * host (as in Azure), every action works against the local platform and is audit-logged.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { allDefinitions } from "../../functions/all.js";
import { recordDeadLetter } from "../../lib/dead-letters.js";
import { readBilling } from "../../lib/billing/account.js";
import { createInstance, getInstance } from "../../lib/instances/store.js";
import type { Instance } from "../../lib/instances/model.js";
import { LOCAL } from "../../local/defaults.js";
import type { LocalApp } from "../../local/app-host.js";
import type { FunctionHost } from "../../local/function-host.js";
import type { Platform } from "../../local/platform.js";
import { connectOrg, type ConnectedOrg } from "../helpers/org.js";
import { TestClient } from "../helpers/client.js";
import { randomRef, startTestApp, startTestPlatform } from "../helpers/platform.js";

const ADMIN = { "x-functions-key": LOCAL.adminKey, "x-ops-actor": "ops-test" };

describe("operator routes (/api/ops)", () => {
  let platform: Platform;
  let host: FunctionHost;
  let local: LocalApp;
  let org: ConnectedOrg;
  const call = async (
    method: string,
    path: string,
    headers: Record<string, string> = ADMIN,
    body?: unknown,
  ) => {
    const res = await fetch(`${host.url}${path}`, {
      method,
      headers: {
        ...headers,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  const failedInstance = async (ref: string, operation: Instance["operation"] = "provision") => {
    const now = platform.services.clock.now();
    return createInstance(platform.services, {
      org: org.slug,
      ref,
      state: "Failed",
      operationId: "op-failed",
      operation,
      step: "deploy",
      attempts: 3,
      operationStartedAt: now,
      plan: "trial",
      lastError: "The deployment failed: SkuNotAvailable",
      requestedBy: org.userId,
      createdAt: now,
      updatedAt: now,
    });
  };

  beforeAll(async () => {
    platform = await startTestPlatform();
    org = await connectOrg(platform.services, platform.supabase!, { projects: 4 });
    local = await startTestApp(platform);
    host = local.host;
  });
  afterAll(async () => {
    await local.close();
    await platform.close();
  });

  it("when called without the admin key (or with a mere function key), then every ops route answers 401", async () => {
    const routes: Array<[string, string]> = [
      ["GET", "/api/ops/instances"],
      ["POST", `/api/ops/instances/${org.slug}/${org.refs[0]!}/retry`],
      ["POST", `/api/ops/instances/${org.slug}/${org.refs[0]!}/force-delete`],
      ["PUT", `/api/ops/orgs/${org.slug}/free-instances`],
      ["GET", "/api/ops/dead-letters?queue=provisioning"],
      ["POST", "/api/ops/dead-letters/replay"],
      ["POST", "/api/ops/reconciler/run"],
      ["GET", "/api/ops/audit?day=2026-01-01"],
    ];
    for (const [method, path] of routes) {
      expect((await call(method, path, {})).status, `${method} ${path}`).toBe(401);
      expect((await call(method, path, { "x-functions-key": LOCAL.functionKey })).status).toBe(401);
      expect((await call(method, path, { "x-functions-key": "guess" })).status).toBe(401);
    }
  });

  it("when the operator does not name themselves, then actions are refused with 400", async () => {
    const res = await call("POST", "/api/ops/reconciler/run", {
      "x-functions-key": LOCAL.adminKey,
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("actor_required");
  });

  it("when instances are listed with filters, then only matching ones come back", async () => {
    const ref = org.refs[0]!;
    await failedInstance(ref);
    const failed = await call("GET", `/api/ops/instances?state=Failed&org=${org.slug}`);
    expect(failed.status).toBe(200);
    expect(failed.body.instances.map((i: { ref: string }) => i.ref)).toContain(ref);
    const running = await call("GET", `/api/ops/instances?state=Running&org=${org.slug}`);
    expect(running.body.instances).toEqual([]);
    expect((await call("GET", "/api/ops/instances?state=Nope")).status).toBe(400);
  });

  it("when a Failed instance is retried, then a fresh provisioning operation starts and the action is audited", async () => {
    const ref = org.refs[1]!;
    await failedInstance(ref);
    const res = await call("POST", `/api/ops/instances/${org.slug}/${ref}/retry`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const after = await getInstance(platform.services, org.slug, ref);
    expect(after?.state).toBe("Requested");
    expect(after?.operationId).not.toBe("op-failed");
    // Not Failed any more: a second retry is a conflict.
    expect((await call("POST", `/api/ops/instances/${org.slug}/${ref}/retry`)).status).toBe(409);
    const day = new Date().toISOString().slice(0, 10);
    const log = await call("GET", `/api/ops/audit?day=${day}`);
    expect(log.body.entries).toContainEqual(
      expect.objectContaining({
        action: "instance.retry",
        target: `${org.slug}/${ref}`,
        actor: "ops-test",
      }),
    );
  });

  it("when an instance is force-deleted, then it is Deleting under a new operation", async () => {
    const ref = org.refs[2]!;
    await failedInstance(ref);
    const res = await call("POST", `/api/ops/instances/${org.slug}/${ref}/force-delete`);
    expect(res.status).toBe(202);
    const after = await getInstance(platform.services, org.slug, ref);
    expect(after?.state).toBe("Deleting");
    expect(after?.operation).toBe("deprovision");
    expect(
      (await call("POST", `/api/ops/instances/${org.slug}/${randomRef()}/force-delete`)).status,
    ).toBe(404);
  });

  it("when free instances are granted, then the org's billing shows them and bad counts are refused", async () => {
    const res = await call("PUT", `/api/ops/orgs/${org.slug}/free-instances`, ADMIN, { count: 3 });
    expect(res.status).toBe(204);
    expect((await readBilling(platform.services, org.slug))?.freeInstances).toBe(3);
    expect(
      (await call("PUT", `/api/ops/orgs/${org.slug}/free-instances`, ADMIN, { count: -1 })).status,
    ).toBe(400);
  });

  it("when a provisioning message was dead-lettered, then it is listed with its reason and replay retries the instance", async () => {
    const ref = org.refs[3]!;
    await failedInstance(ref);
    const body = { ref, org: org.slug, operationId: "op-failed", step: "deploy", attempt: 3 };
    const ctx = await new TestClient(allDefinitions, platform.services).serviceBusContext(
      "provisioningDeadLetter",
      {
        body,
        messageId: `op-failed:deploy:3:${ref}`,
        sessionId: ref,
        deliveryCount: 9,
        deadLetterReason: "MaxDeliveryCountExceeded",
      },
    );
    await recordDeadLetter(platform.services, "provisioning", body, ctx);
    await recordDeadLetter(platform.services, "provisioning", body, ctx); // redelivered: recorded once

    const listed = await call("GET", "/api/ops/dead-letters?queue=provisioning");
    const mine = listed.body.deadLetters.filter((d: { sessionId: string }) => d.sessionId === ref);
    expect(mine).toHaveLength(1);
    expect(mine[0].reason).toBe("MaxDeliveryCountExceeded");

    const replay = await call("POST", "/api/ops/dead-letters/replay", ADMIN, {
      queue: "provisioning",
      id: mine[0].id,
    });
    expect(replay.status, JSON.stringify(replay.body)).toBe(200);
    expect(replay.body.results[0].outcome).toBe("replayed");
    expect((await getInstance(platform.services, org.slug, ref))?.state).toBe("Requested");
    const after = await call("GET", "/api/ops/dead-letters?queue=provisioning");
    expect(after.body.deadLetters.some((d: { sessionId: string }) => d.sessionId === ref)).toBe(
      false,
    );
  });

  it("when the reconciler is run now, then its report comes back and the run is audited", async () => {
    const res = await call("POST", "/api/ops/reconciler/run");
    expect(res.status).toBe(200);
    expect(typeof res.body.instances).toBe("number");
    const day = new Date().toISOString().slice(0, 10);
    const log = await call("GET", `/api/ops/audit?day=${day}`);
    expect(log.body.entries.some((e: { action: string }) => e.action === "reconciler.run")).toBe(
      true,
    );
  });
});
