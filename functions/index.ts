/**
 * Entry point the Azure Functions host loads (`main` in package.json, bundled into dist/).
 * Registers every definition with the programming model; handlers get the process's services,
 * created on first use from the validated configuration.
 */
// @azure/functions is CommonJS without statically detectable named exports: take the default.
import azureFunctions from "@azure/functions";

import { getConfig } from "../lib/config.js";
import { queueEntityPath } from "../lib/functions.js";
import { createServices, type Services } from "../lib/services.js";
import { allDefinitions } from "./all.js";

let services: Services | undefined;

/** Tables and queues are declared by the infrastructure (bicep/), so nothing is created here. */
function getServices(): Services {
  services ??= createServices(getConfig());
  return services;
}

const { app } = azureFunctions;

app.setup({ enableHttpStream: false });

for (const def of allDefinitions) {
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
        connection: "ServiceBusConnection",
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
