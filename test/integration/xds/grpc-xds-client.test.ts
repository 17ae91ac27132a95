/**
 * The registry served over ADS to an unmodified @grpc/grpc-js-xds client:
 * weighted traffic, removal and return of endpoints, NACK handling, and a
 * control-plane restart under load.
 */
import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import type { Client } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ClusterLoadAssignmentSchema } from "../../../gen/envoy/config/endpoint/v3/endpoint_pb.js";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { XdsAdminService } from "../../../gen/latticeforge/xds/v1/xds_pb.js";
import { typeUrls } from "../../../server/core/xds/resources.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { callUntil, distribution, freePort, startBackend, who, xdsClient, type Backend } from "../../fixtures/xds.js";

const opts = { timeoutMs: 5000 };
const locality = { region: "eu-west", zone: "eu-west-1a" };

/** Instance ids registered by the running test, deregistered after it. */
const registered: string[] = [];

/** Registers `backend` as an instance of `service`; its instance id is `service/name`. */
async function registerBackend(
  registry: Client<typeof RegistryService>,
  service: string,
  backend: Backend,
  zone: string,
  weight: number,
): Promise<string> {
  const instanceId = `${service}.${backend.name}`;
  await registry.register({ instance: { instanceId, serviceName: service, endpoint: backend.endpoint, region: "eu-west", zone, weight } }, opts);
  registered.push(instanceId);
  return instanceId;
}

/** Calls continuously for `ms`; the backends that answered and when. */
async function callFor(client: grpc.Client, ms: number): Promise<{ name: string; at: number }[]> {
  const answers: { name: string; at: number }[] = [];
  const until = Date.now() + ms;
  while (Date.now() < until) answers.push({ name: await who(client), at: Date.now() });
  return answers;
}

describe("xDS with @grpc/grpc-js-xds", () => {
  let server: TestControlPlane;
  let registry: Client<typeof RegistryService>;
  let backends: Backend[];
  let corruptEndpoints = false;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    server = await startTestControlPlane({
      flags: { "reap-interval": "0.05" },
      adjustXdsResource: (kind, service, resource) =>
        kind === "endpoint" && corruptEndpoints
          ? anyPack(
              ClusterLoadAssignmentSchema,
              create(ClusterLoadAssignmentSchema, {
                clusterName: service,
                endpoints: [
                  {
                    locality: { region: "eu-west", zone: "bad" },
                    loadBalancingWeight: 1,
                    lbEndpoints: [
                      {
                        hostIdentifier: {
                          case: "endpoint",
                          value: { address: { address: { case: "socketAddress", value: { address: "backend.invalid", portSpecifier: { case: "portValue", value: 1 } } } } },
                        },
                      },
                    ],
                  },
                ],
              }),
            )
          : resource,
    });
    registry = server.grpc(RegistryService);
    backends = await Promise.all(["b1", "b2", "b3", "b4", "b5"].map((name) => startBackend(name)));
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    corruptEndpoints = false;
    for (const instanceId of registered.splice(0)) await registry.deregister({ instanceId }, opts).catch(() => undefined);
  });
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.stop()));
    await server.stop();
  });

  function connect(service: string, nodeId: string): grpc.Client {
    const client = xdsClient(service, { serverUri: server.grpcAddress, nodeId, locality });
    clients.push(client);
    return client;
  }

  it("spreads calls by instance weight across zones", async () => {
    const [b1, b2, b3] = backends as [Backend, Backend, Backend];
    await registerBackend(registry, "weighted", b1, "eu-west-1a", 30);
    await registerBackend(registry, "weighted", b2, "eu-west-1a", 30);
    await registerBackend(registry, "weighted", b3, "eu-west-1b", 20);
    const client = connect("weighted", "node-weighted");
    await callUntil(client, (name) => name !== "", 10_000, "first call through xDS");
    const total = 3000;
    const counts = await distribution(client, total);
    // Weights 30:30:20: 37.5% / 37.5% / 25%; ±4 points is over 4 standard deviations.
    expect(Math.abs((counts.get("b1") ?? 0) / total - 0.375)).toBeLessThan(0.04);
    expect(Math.abs((counts.get("b2") ?? 0) / total - 0.375)).toBeLessThan(0.04);
    expect(Math.abs((counts.get("b3") ?? 0) / total - 0.25)).toBeLessThan(0.04);
  });

  it("weights instances inside one zone too (one locality per instance), also for a target with a port", async () => {
    const [b1, b2] = backends as [Backend, Backend];
    await registerBackend(registry, "zoned", b1, "eu-west-1a", 60);
    await registerBackend(registry, "zoned", b2, "eu-west-1a", 20);
    const client = connect("zoned:8443", "node-zoned");
    await callUntil(client, (name) => name !== "", 10_000, "first call through xDS");
    const total = 3000;
    const counts = await distribution(client, total);
    expect(Math.abs((counts.get("b1") ?? 0) / total - 0.75)).toBeLessThan(0.04);
    expect(Math.abs((counts.get("b2") ?? 0) / total - 0.25)).toBeLessThan(0.04);
  });

  it("stops sending to a deregistered instance within 1 s and sends again after it re-registers", async () => {
    const [b1, b2] = backends as [Backend, Backend];
    await registerBackend(registry, "churn", b1, "eu-west-1a", 50);
    await registerBackend(registry, "churn", b2, "eu-west-1b", 50);
    const client = connect("churn", "node-churn");
    await callUntil(client, (name) => name === "b2", 10_000, "b2 reached");

    await registry.deregister({ instanceId: "churn.b2" }, opts);
    const removedAt = Date.now();
    const answers = await callFor(client, 1500);
    const late = answers.filter((a) => a.name === "b2" && a.at > removedAt + 1000);
    expect(late).toEqual([]);
    expect(answers.slice(-50).every((a) => a.name === "b1")).toBe(true);

    await registerBackend(registry, "churn", b2, "eu-west-1b", 50);
    const back = await callUntil(client, (name) => name === "b2", 5000, "b2 back after re-registration");
    expect(back).toBeLessThan(5000);
  });

  it("stops sending to an instance marked unhealthy within 1 s and sends again once healthy", async () => {
    const [b1, b2] = backends as [Backend, Backend];
    await registerBackend(registry, "health", b1, "eu-west-1a", 50);
    await registerBackend(registry, "health", b2, "eu-west-1b", 50);
    const client = connect("health", "node-health");
    await callUntil(client, (name) => name === "b2", 10_000, "b2 reached");

    await registry.updateHealth({ status: { instanceId: "health.b2", healthy: false, latencyMs: 5, consecutiveFailures: 1 } }, opts);
    const markedAt = Date.now();
    const answers = await callFor(client, 1500);
    expect(answers.filter((a) => a.name === "b2" && a.at > markedAt + 1000)).toEqual([]);

    await registry.updateHealth({ status: { instanceId: "health.b2", healthy: true, latencyMs: 5, consecutiveFailures: 0 } }, opts);
    await callUntil(client, (name) => name === "b2", 5000, "b2 back once healthy");
  });

  it("a NACKed load assignment is recorded and the client keeps serving its last good config", async () => {
    const [b1, , , b4, b5] = backends as [Backend, Backend, Backend, Backend, Backend];
    await registerBackend(registry, "nack", b1, "eu-west-1a", 50);
    const client = connect("nack", "node-nack");
    await callUntil(client, (name) => name === "b1", 10_000, "b1 reached");
    const admin = server.grpc(XdsAdminService);
    const endpointsOf = async () => {
      const { clients: listed, revision } = await admin.listClients({ nodeId: "node-nack" }, opts);
      expect(listed).toHaveLength(1);
      return { subscription: listed[0]!.subscriptions.find((s) => s.typeUrl === typeUrls.endpoint)!, revision };
    };
    const before = await endpointsOf();
    expect(before.subscription.resourceNames).toEqual(["nack"]);
    expect(before.subscription.lastNack).toBeUndefined();
    const goodVersion = before.subscription.ackedVersion;

    corruptEndpoints = true;
    await registerBackend(registry, "nack", b4, "eu-west-1a", 50);
    const deadline = Date.now() + 5000;
    let nacked = await endpointsOf();
    while (nacked.subscription.lastNack === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      nacked = await endpointsOf();
    }
    expect(nacked.subscription.lastNack?.errorMessage).toContain("backend.invalid");
    expect(nacked.subscription.lastNack?.version).toBe(String(nacked.revision));
    expect(nacked.subscription.ackedVersion).toBe(goodVersion);
    // Still the last good config: b1 only, never the b4 the rejected version added.
    const answers = await callFor(client, 500);
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.every((a) => a.name === "b1")).toBe(true);

    corruptEndpoints = false;
    await registerBackend(registry, "nack", b5, "eu-west-1b", 50);
    await callUntil(client, (name) => name === "b4", 5000, "b4 reached after a good push");
    const after = await endpointsOf();
    expect(Number(after.subscription.ackedVersion)).toBeGreaterThan(Number(goodVersion));
    const scrape = await fetch(`${server.httpBaseUrl}/metrics`);
    const metrics = await scrape.text();
    expect(scrape.status, metrics).toBe(200);
    expect(metrics).toMatch(/latticeforge_xds_nacks_total\{type="endpoint"\} [1-9]/);
  });

  it("lists connected clients with node, locality, user agent, subscriptions and ACKed versions", async () => {
    await registerBackend(registry, "listed", backends[0]!, "eu-west-1a", 50);
    const client = connect("listed", "node-listed");
    await callUntil(client, (name) => name === "b1", 10_000, "b1 reached");
    const { clients: listed, revision } = await server.grpc(XdsAdminService).listClients({ nodeId: "node-listed" }, opts);
    expect(listed).toHaveLength(1);
    const entry = listed[0]!;
    expect(entry.locality).toMatchObject({ region: "eu-west", zone: "eu-west-1a" });
    expect(entry.userAgentName).toContain("gRPC Node");
    expect(entry.subscriptions.map((s) => s.typeUrl)).toEqual([typeUrls.listener, typeUrls.route, typeUrls.cluster, typeUrls.endpoint]);
    for (const subscription of entry.subscriptions) {
      expect(subscription.resourceNames).toEqual(["listed"]);
      expect(subscription.ackedVersion).toBe(subscription.sentVersion);
      expect(Number(subscription.ackedVersion)).toBeLessThanOrEqual(Number(revision));
    }
  });
});

describe("xDS across a control-plane restart", () => {
  it("keeps the client's traffic flowing while the server is down and follows changes after it returns", async () => {
    const port = await freePort();
    const flags = { listen: `127.0.0.1:${port}` };
    const dir = mkdtempSync(join(tmpdir(), "latticeforge-xds-restart-"));
    let server = await startTestControlPlane({ flags, dir });
    const [b1, b2] = await Promise.all([startBackend("r1"), startBackend("r2")]);
    const client = xdsClient("restart", { serverUri: `127.0.0.1:${port}`, nodeId: "node-restart", locality });
    try {
      const registry = server.grpc(RegistryService);
      for (const b of [b1, b2]) {
        await registry.register({ instance: { instanceId: b.name, serviceName: "restart", endpoint: b.endpoint, region: "eu-west", zone: "eu-west-1a", weight: 50 } }, opts);
      }
      await callUntil(client, (name) => name === "r2", 10_000, "r2 reached");

      let failures = 0;
      let calls = 0;
      let running = true;
      const load = (async () => {
        while (running) {
          calls++;
          await who(client, 2000).catch(() => failures++);
        }
      })();
      await server.stop();
      await new Promise((resolve) => setTimeout(resolve, 500));
      server = await startTestControlPlane({ flags, dir });
      await new Promise((resolve) => setTimeout(resolve, 500));
      running = false;
      await load;
      expect(calls).toBeGreaterThan(50);
      expect(failures).toBe(0);

      // Back on the new server: it reconnects, and a change reaches it.
      await server.grpc(RegistryService).deregister({ instanceId: "r2" }, opts);
      await callUntil(client, () => true, 1000, "a call");
      const answers = await (async () => {
        await new Promise((resolve) => setTimeout(resolve, 0));
        const deadline = Date.now() + 15_000;
        for (;;) {
          const recent = await callFor(client, 200);
          if (recent.every((a) => a.name === "r1") || Date.now() > deadline) return recent;
        }
      })();
      expect(answers.every((a) => a.name === "r1")).toBe(true);
    } finally {
      client.close();
      await Promise.all([b1.stop(), b2.stop()]);
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});
