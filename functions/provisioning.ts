/** Consumers of the `provisioning` queue and of its dead letters. */
import { recordDeadLetter } from "../lib/dead-letters.js";
import { defineQueue, type FunctionDefinition } from "../lib/functions.js";
import { bodyAsJson } from "../lib/provisioning/messages.js";
import {
  handleProvisioningQueueDeadLetter,
  handleProvisioningQueueMessage,
} from "../lib/provisioning/queue.js";

export const definitions: FunctionDefinition[] = [
  defineQueue({
    name: "provisioningStep",
    queueSetting: "PROVISIONING_QUEUE",
    isSessionsEnabled: true,
    handler: async (message, ctx, services) => {
      await handleProvisioningQueueMessage(services, message, ctx);
    },
  }),
  defineQueue({
    name: "provisioningDeadLetter",
    queueSetting: "PROVISIONING_QUEUE",
    subQueue: "deadLetter",
    isSessionsEnabled: false,
    handler: async (message, ctx, services) => {
      await handleProvisioningQueueDeadLetter(services, message, ctx);
      // Kept for operators (GET /api/ops/dead-letters), after what it drove was stopped.
      await recordDeadLetter(services, "provisioning", bodyAsJson(message), ctx);
    },
  }),
];
