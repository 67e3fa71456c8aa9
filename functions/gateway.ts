/** Consumer of the `gateway` queue (one session: pushes are serialized) and of its dead letters. */
import { handleGatewayMessage, reportGatewayDeadLetter } from "../lib/gateway/consumer.js";
import { recordDeadLetter } from "../lib/dead-letters.js";
import { defineQueue, type FunctionDefinition } from "../lib/functions.js";
import { bodyAsJson } from "../lib/provisioning/messages.js";

export const definitions: FunctionDefinition[] = [
  defineQueue({
    name: "gatewaySync",
    queueSetting: "GATEWAY_QUEUE",
    isSessionsEnabled: true,
    handler: async (message, ctx, services) => {
      await handleGatewayMessage(services, message, ctx);
    },
  }),
  defineQueue({
    name: "gatewayDeadLetter",
    queueSetting: "GATEWAY_QUEUE",
    subQueue: "deadLetter",
    isSessionsEnabled: false,
    handler: async (message, ctx, services) => {
      reportGatewayDeadLetter(message, ctx);
      await recordDeadLetter(services, "gateway", bodyAsJson(message), ctx);
    },
  }),
];
