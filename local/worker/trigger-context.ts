/**
 * Trigger metadata exactly as a queue-triggered handler sees it in Azure: the host's binding data
 * (`serviceBusTriggerInput`) converted by `@azure/functions` itself (typed data, camel-casing),
 * for tests that call a consumer's handler directly.
 */
import { randomUUID } from "node:crypto";

import type { TriggerMetadata } from "@azure/functions";

import { captureRegistrations, type RegisteredFunction } from "./core-api.js";
import { serviceBusTriggerInput, type ServiceBusMessageLike } from "./host-data.js";

let probe: Promise<RegisteredFunction> | undefined;

/** A Service Bus function registered through the library, to borrow its programming model. */
function serviceBusProbe(): Promise<RegisteredFunction> {
  probe ??= (async () => {
    const { default: functions } = await import("@azure/functions");
    const registry = await captureRegistrations(() => {
      functions.app.serviceBusQueue("triggerMetadataProbe", {
        connection: "ServiceBusConnection",
        queueName: "probe",
        handler: () => undefined,
      });
    });
    const fn = registry.functions.get("triggerMetadataProbe");
    if (!fn) throw new Error("the probe function was not registered");
    return fn;
  })();
  return probe;
}

/** The `context.triggerMetadata` a Service Bus-triggered handler gets for this message. */
export async function serviceBusTriggerMetadata(
  message: ServiceBusMessageLike,
  opts: { isSessionsEnabled?: boolean } = {},
): Promise<TriggerMetadata> {
  const fn = await serviceBusProbe();
  const [bindingName] = Object.keys(fn.metadata.bindings);
  const input = serviceBusTriggerInput(message, {
    bindingName: bindingName ?? "serviceBusTrigger",
    isSessionsEnabled: opts.isSessionsEnabled ?? false,
  });
  const invocationId = randomUUID();
  const model = fn.model.getInvocationModel({
    invocationId,
    request: {
      invocationId,
      functionId: fn.metadata.name,
      inputData: input.inputData,
      triggerMetadata: input.triggerMetadata,
      traceContext: { traceParent: "", traceState: "", attributes: {} },
    },
    metadata: fn.metadata,
    log: () => undefined,
  });
  const { context } = await model.getArguments();
  return (context as { triggerMetadata?: TriggerMetadata }).triggerMetadata ?? {};
}
