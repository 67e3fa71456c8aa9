import { describe, expect, it } from "vitest";

import { parseResourceId, summarizeDeploymentError } from "../../../lib/azure/arm.js";
import { azureArmTransport } from "../../../lib/azure/clients.js";
import { messageIdFor } from "../../../lib/provisioning/messages.js";
import { armSimulatorTransport } from "../../../local/simulators/arm-http.js";

describe("ARM transports", () => {
  it("when ARM_ENDPOINT is https, then Azure's transport uses it as it is", () => {
    expect(azureArmTransport("https://management.azure.com/")).toEqual({
      endpoint: "https://management.azure.com",
    });
  });

  it("when ARM_ENDPOINT is plain http, then Azure's transport refuses it", () => {
    expect(() => azureArmTransport("http://127.0.0.1:4000")).toThrow(/must be https/);
  });

  it("when the simulator is plain http, then its transport keeps an https endpoint", () => {
    const transport = armSimulatorTransport("http://127.0.0.1:4000");
    expect(transport.endpoint).toBe("https://127.0.0.1:4000");
    expect(typeof transport.httpClient?.sendRequest).toBe("function");
  });
});

describe("summarizeDeploymentError", () => {
  it("when ARM nests the cause, then the innermost code and message are shown", () => {
    const error = {
      code: "DeploymentFailed",
      message: "At least one resource deployment operation failed.",
      details: [{ code: "SkuNotAvailable", message: "The requested VM size is not available." }],
    };
    expect(summarizeDeploymentError(error)).toBe(
      "SkuNotAvailable: The requested VM size is not available.",
    );
    expect(summarizeDeploymentError(undefined)).toBe("DeploymentFailed");
  });
});

describe("parseResourceId", () => {
  it("when given a resource id, then its group, namespace, type and name come out", () => {
    expect(
      parseResourceId(
        "/subscriptions/s/resourceGroups/rg-1/providers/Microsoft.Network/networkInterfaces/grafana-x-nic",
      ),
    ).toEqual({
      resourceGroup: "rg-1",
      namespace: "Microsoft.Network",
      type: "networkInterfaces",
      name: "grafana-x-nic",
    });
    expect(parseResourceId("/subscriptions/s/resourceGroups/rg")).toBeUndefined();
  });
});

describe("messageIdFor", () => {
  it("when the attempt is 0, then the id is operation:step; continuations add the attempt", () => {
    expect(messageIdFor({ operationId: "op", step: "deploy", attempt: 0 })).toBe("op:deploy");
    expect(messageIdFor({ operationId: "op", step: "verify", attempt: 3 })).toBe("op:verify:3");
  });
});
