/**
 * The `provisioning` queue carries three kinds of message, each in its own session: the steps of
 * an instance's operations (`sessionId = ref`), and the rollout driver's nudges
 * (`sessionId = "rollout"`). This routes a delivered body to its consumer.
 */
import type { InvocationContext } from "@azure/functions";

import type { Services } from "../services.js";
import { startReplacement } from "./api.js";
import { handleProvisioningMessage } from "./engine.js";
import { bodyAsJson } from "./messages.js";
import { handleRolloutMessage, reasonOf, rolloutMessageSchema } from "./rollout.js";

export async function handleProvisioningQueueMessage(
  services: Services,
  rawBody: unknown,
  ctx: InvocationContext,
): Promise<void> {
  const body = bodyAsJson(rawBody);
  const rollout = rolloutMessageSchema.safeParse(body);
  if (rollout.success) {
    await handleRolloutMessage(services, rollout.data, ctx, async (s, c, i, r) =>
      Boolean(
        await startReplacement(s, c, i, {
          operation: "upgrade",
          reason: reasonOf(r.rolloutId),
          templateSpecId: r.templateSpecId,
        }),
      ),
    );
    return;
  }
  await handleProvisioningMessage(services, body, ctx);
}
