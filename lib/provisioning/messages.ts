/**
 * Messages of the `provisioning` queue. One session per project ref (`sessionId = ref`), so the
 * steps of a project never run concurrently. A message only wakes the operation up: the
 * instance row is the source of truth, and a message whose (operation, step, attempt) is not
 * the row's current one is stale.
 *
 * `messageId = <operationId>:<step>` (`:<attempt>` for continuations), so a message sent twice
 * for the same position of an operation is dropped by the queue's duplicate detection.
 */
import { z } from "zod";

import { projectRefSchema } from "../http.js";
import type { Instance } from "../instances/model.js";
import type { Services } from "../services.js";

export const provisioningMessageSchema = z.object({
  org: z.string().min(1).max(128),
  ref: projectRefSchema,
  operationId: z.string().min(1).max(64),
  step: z.string().min(1).max(40),
  attempt: z.number().int().min(0).max(100_000),
});
export type ProvisioningMessage = z.infer<typeof provisioningMessageSchema>;

export function messageIdFor(
  m: Pick<ProvisioningMessage, "operationId" | "step" | "attempt">,
): string {
  return m.attempt === 0 ? `${m.operationId}:${m.step}` : `${m.operationId}:${m.step}:${m.attempt}`;
}

/** The message that drives an instance's current step. */
export function currentMessage(i: Instance): ProvisioningMessage {
  return { org: i.org, ref: i.ref, operationId: i.operationId, step: i.step, attempt: i.attempts };
}

/** Sends now, or schedules when `at` is in the future (no function ever waits for it). */
export async function dispatchProvisioning(
  services: Services,
  m: ProvisioningMessage,
  at?: Date,
): Promise<void> {
  const out = { body: m, messageId: messageIdFor(m), sessionId: m.ref };
  const now = services.clock.now().getTime();
  if (at && at.getTime() > now + 20) await services.bus.schedule("provisioning", out, at);
  else await services.bus.send("provisioning", out);
}

/** Reads a message body as the host hands it over (parsed JSON, or text / bytes of JSON). */
export function bodyAsJson(body: unknown): unknown {
  if (typeof body === "string") {
    try {
      return JSON.parse(body) as unknown;
    } catch {
      return body;
    }
  }
  if (body instanceof Uint8Array) return bodyAsJson(Buffer.from(body).toString("utf8"));
  return body;
}
