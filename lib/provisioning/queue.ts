/**
 * The `provisioning` queue carries three kinds of message: the steps of an instance's operations
 * and its alerting `configure` pushes (both `sessionId = ref`: one project's never run at once),
 * and the rollout driver's nudges (`sessionId = "rollout"`). This routes a delivered body, or a
 * dead-lettered one, to its consumer.
 */
import type { InvocationContext } from "@azure/functions";

import {
  handleConfigureDeadLetter,
  handleConfigureMessage,
  isConfigureMessage,
} from "../alerts/apply.js";
import type { Services } from "../services.js";
import { startReplacement } from "./api.js";
import { handleProvisioningDeadLetter, handleProvisioningMessage } from "./engine.js";
import { bodyAsJson } from "./messages.js";
import { handleRolloutMessage, reasonOf, rolloutMessageSchema } from "./rollout.js";

export async function handleProvisioningQueueMessage(
  services: Services,
  rawBody: unknown,
  ctx: InvocationContext,
): Promise<void> {
  const body = bodyAsJson(rawBody);
  if (isConfigureMessage(body)) {
    await handleConfigureMessage(services, body, ctx);
    return;
  }
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

export async function handleProvisioningQueueDeadLetter(
  services: Services,
  rawBody: unknown,
  ctx: InvocationContext,
): Promise<void> {
  const body = bodyAsJson(rawBody);
  if (isConfigureMessage(body)) await handleConfigureDeadLetter(services, body, ctx);
  // A rollout nudge that died is only recorded: the next nudge (the reconciler's) drives on.
  else if (!rolloutMessageSchema.safeParse(body).success)
    await handleProvisioningDeadLetter(services, body, ctx);
}
