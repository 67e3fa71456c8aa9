/** Consumers of the `provisioning` queue and of its dead letters. */
import {
  handleConfigureDeadLetter,
  handleConfigureMessage,
  isConfigureMessage,
} from "../lib/alerts/apply.js";
import { recordDeadLetter } from "../lib/dead-letters.js";
import { defineQueue, type FunctionDefinition } from "../lib/functions.js";
import { bodyAsJson } from "../lib/provisioning/messages.js";
import {
  handleProvisioningDeadLetter,
  handleProvisioningMessage,
} from "../lib/provisioning/engine.js";

export const definitions: FunctionDefinition[] = [
  defineQueue({
    name: "provisioningStep",
    queueSetting: "PROVISIONING_QUEUE",
    isSessionsEnabled: true,
    handler: async (message, ctx, services) => {
      // One queue, one session per project: alert configuration runs between lifecycle steps.
      const body = bodyAsJson(message);
      if (isConfigureMessage(body)) await handleConfigureMessage(services, body, ctx);
      else await handleProvisioningMessage(services, message, ctx);
    },
  }),
  defineQueue({
    name: "provisioningDeadLetter",
    queueSetting: "PROVISIONING_QUEUE",
    subQueue: "deadLetter",
    isSessionsEnabled: false,
    handler: async (message, ctx, services) => {
      if (isConfigureMessage(bodyAsJson(message))) {
        await handleConfigureDeadLetter(services, bodyAsJson(message), ctx);
        await recordDeadLetter(services, "provisioning", bodyAsJson(message), ctx);
        return;
      }
      await handleProvisioningDeadLetter(services, message, ctx);
      // Kept for operators (GET /api/ops/dead-letters), after the operation was stopped.
      await recordDeadLetter(services, "provisioning", bodyAsJson(message), ctx);
    },
  }),
];
