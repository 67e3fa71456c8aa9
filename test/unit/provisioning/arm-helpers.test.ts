import { createDefaultHttpClient } from "@azure/core-rest-pipeline";
import { describe, expect, it } from "vitest";

import { parseResourceId, summarizeDeploymentError } from "../../../lib/azure/arm.js";
import { armTransport } from "../../../lib/azure/clients.js";
import { messageIdFor } from "../../../lib/provisioning/messages.js";

describe("armTransport", () => {
  it("when ARM_ENDPOINT is https, then it is used as it is", () => {
    expect(armTransport("https://management.azure.com/", undefined)).toEqual({
      endpoint: "https://management.azure.com",
    });
  });

  it("when ARM_ENDPOINT is plain http, then the simulator transport is required and the endpoint becomes https", () => {
    expect(() => armTransport("http://127.0.0.1:4000", undefined)).toThrow(/plain http/);
    const httpClient = createDefaultHttpClient();
    expect(armTransport("http://127.0.0.1:4000", httpClient)).toEqual({
      endpoint: "https://127.0.0.1:4000",
      httpClient,
    });
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
