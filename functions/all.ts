/** Every function of the app, in one list: the Functions entry and the local host both use it. */
import type { FunctionDefinition } from "../lib/functions.js";
import { definitions as alerts } from "./alerts.js";
import { definitions as auth } from "./auth.js";
import { definitions as billing } from "./billing.js";
import { definitions as gateway } from "./gateway.js";
import { definitions as grafana } from "./grafana.js";
import { definitions as health } from "./health.js";
import { definitions as me } from "./me.js";
import { openApiDefinitions } from "./openapi.js";
import { definitions as ops } from "./ops.js";
import { definitions as projects } from "./projects.js";
import { definitions as provisioning } from "./provisioning.js";
import { definitions as reconciler } from "./reconciler.js";
import { definitions as stripeWebhook } from "./stripe-webhook.js";

export const allDefinitions: readonly FunctionDefinition[] = [
  ...health,
  ...auth,
  ...me,
  ...projects,
  ...grafana,
  ...alerts,
  ...billing,
  ...stripeWebhook,
  ...ops,
  ...provisioning,
  ...gateway,
  ...reconciler,
  ...openApiDefinitions(() => allDefinitions),
];
