/**
 * Entry point the Azure Functions host loads (`main` in package.json, bundled into dist/).
 * Registers every definition with the programming model; handlers get the process's services,
 * created on first use from the validated configuration.
 */
// @azure/functions is CommonJS without statically detectable named exports: take the default.
import azureFunctions from "@azure/functions";

import { getConfig } from "../lib/config.js";
import { createServices, type Services } from "../lib/services.js";
import { allDefinitions } from "./all.js";
import { registerDefinitions } from "./register.js";

let services: Services | undefined;

/** Tables and queues are declared by the infrastructure (bicep/), so nothing is created here. */
function getServices(): Services {
  services ??= createServices(getConfig());
  return services;
}

azureFunctions.app.setup({ enableHttpStream: false });
registerDefinitions(allDefinitions, getServices);

// The worker is being shut down (scale-in, deployment): close connections cleanly.
azureFunctions.app.hook.appTerminate(async () => {
  await services?.close();
});
