/**
 * The reconciler timer (every 5 minutes; run it now with the host's admin API:
 * `POST /admin/functions/reconciler`).
 */
import { defineTimer, type FunctionDefinition } from "../lib/functions.js";
import { runReconciler } from "../lib/reconciler/index.js";

export const definitions: FunctionDefinition[] = [
  defineTimer({
    name: "reconciler",
    schedule: "0 */5 * * * *",
    handler: async (_timer, ctx, services) => {
      await runReconciler(services, ctx);
    },
  }),
];
