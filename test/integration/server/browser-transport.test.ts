import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBrowserTransport } from "../../../client/browser-transport.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { instance } from "../../fixtures/registry.js";
import { nextWithin } from "../../fixtures/streams.js";

describe("the fetch-based browser transport against the HTTP port", () => {
  let server: TestControlPlane;
  beforeAll(async () => {
    server = await startTestControlPlane();
  });
  afterAll(() => server.stop());

  it.each([
    ["connect JSON", { protocol: "connect" as const }],
    ["connect binary", { protocol: "connect" as const, binary: true }],
    ["gRPC-Web", { protocol: "grpc-web" as const }],
  ])("answers unary calls over %s", async (_name, options) => {
    const health = createClient(Health, createBrowserTransport({ baseUrl: server.httpBaseUrl, ...options }));
    expect((await health.check({ service: "" }, { timeoutMs: 5000 })).status).toBe(Status.SERVING);
  });

  it("streams WatchTopology over gRPC-Web", async () => {
    const registry = createClient(RegistryService, createBrowserTransport({ baseUrl: server.httpBaseUrl, protocol: "grpc-web" }));
    const stream = registry.watchTopology({ serviceNames: ["browser"] }, { timeoutMs: 10_000 })[Symbol.asyncIterator]();
    expect((await nextWithin(stream)).value?.message.case).toBe("snapshot");
    const added = await registry.register({ instance: instance({ serviceName: "browser" }) }, { timeoutMs: 5000 });
    const change = (await nextWithin(stream)).value;
    expect(change?.message.case === "change" && change.message.value.revision).toBe(added.revision);
    await stream.return?.();
  });
});
