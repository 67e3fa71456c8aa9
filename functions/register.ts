/**
 * Registers function definitions with the programming model (`@azure/functions` 4.x), which
 * hands them to the Functions worker. The app's entry point registers every definition with the
 * process's services; the local host and tests register the same list the same way.
 */
// @azure/functions is CommonJS without statically detectable named exports: take the default.
import azureFunctions from "@azure/functions";

import { queueEntityPath, type FunctionDefinition } from "../lib/functions.js";
import type { Services } from "../lib/services.js";

const { app } = azureFunctions;

/** The Service Bus connection setting every queue trigger binds to. */
const SERVICE_BUS_CONNECTION = "ServiceBusConnection";

export function registerDefinitions(
  definitions: readonly FunctionDefinition[],
  getServices: () => Services,
): void {
  for (const def of definitions) {
    switch (def.kind) {
      case "http":
        app.http(def.name, {
          route: def.route,
          methods: def.methods,
          authLevel: def.authLevel,
          handler: async (req, ctx) => def.handler(req, ctx, getServices()),
        });
        break;
      case "serviceBusQueue":
        app.serviceBusQueue(def.name, {
          connection: SERVICE_BUS_CONNECTION,
          queueName: queueEntityPath(def, `%${def.queueSetting}%`),
          isSessionsEnabled: def.isSessionsEnabled,
          handler: async (message, ctx) => def.handler(message, ctx, getServices()),
        });
        break;
      case "timer":
        app.timer(def.name, {
          schedule: def.schedule,
          handler: async (timer, ctx) => def.handler(timer, ctx, getServices()),
        });
        break;
    }
  }
}
