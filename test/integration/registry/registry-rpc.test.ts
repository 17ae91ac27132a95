import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryService, SelectionStrategy } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { instance } from "../../fixtures/registry.js";

async function codeOf(promise: Promise<unknown>): Promise<{ code: Code; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return { code: (error as ConnectError).code, message: (error as ConnectError).rawMessage };
}

describe.each(["grpc", "connect"] as const)("RegistryService over %s", (transport) => {
  let server: TestControlPlane;
  let registry: Client<typeof RegistryService>;
  const opts = { timeoutMs: 5000 };
  beforeAll(async () => {
    server = await startTestControlPlane({ flags: { "max-instances-per-service": "3" } });
    registry = transport === "grpc" ? server.grpc(RegistryService) : server.http(RegistryService);
  });
  afterAll(() => server.stop());

  it("registers an instance, stamping times with the server clock", async () => {
    const before = Date.now();
    const sent = instance({ serviceName: "reg-basic", registeredAt: { seconds: 1n } });
    const res = await registry.register({ instance: sent }, opts);
    expect(res.revision).toBeGreaterThan(0n);
    const state = res.instance!;
    expect(state.instance?.instanceId).toBe(sent.instanceId);
    expect(state.healthy).toBe(true);
    expect(state.stale).toBe(false);
    const registeredMs = Number(state.instance!.registeredAt!.seconds) * 1000;
    expect(registeredMs).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
  });

  it("refuses a duplicate instance_id with ALREADY_EXISTS", async () => {
    const sent = instance({ serviceName: "reg-dup" });
    await registry.register({ instance: sent }, opts);
    const { code, message } = await codeOf(registry.register({ instance: sent }, opts));
    expect(code).toBe(Code.AlreadyExists);
    expect(message).toContain(sent.instanceId as string);
  });

  it("refuses registrations past the per-service limit with RESOURCE_EXHAUSTED", async () => {
    for (let i = 0; i < 3; i++) await registry.register({ instance: instance({ serviceName: "reg-limit" }) }, opts);
    const { code, message } = await codeOf(registry.register({ instance: instance({ serviceName: "reg-limit" }) }, opts));
    expect(code).toBe(Code.ResourceExhausted);
    expect(message).toContain("reg-limit");
  });

  it.each([
    ["instance.weight", { weight: 0 }],
    ["instance.endpoint", { endpoint: "no-port" }],
    ["instance.endpoint", { endpoint: "10.0.0.1:70000" }],
    ["instance.service_name", { serviceName: "" }],
    ["instance.region", { region: "" }],
    ["instance.instance_id", { instanceId: "bad id with spaces" }],
  ])("refuses a bad %s with INVALID_ARGUMENT naming it", async (field, override) => {
    const { code, message } = await codeOf(registry.register({ instance: instance(override) }, opts));
    expect(code).toBe(Code.InvalidArgument);
    expect(message.startsWith(field)).toBe(true);
  });

  it("refuses a request without an instance", async () => {
    const { code, message } = await codeOf(registry.register({}, opts));
    expect(code).toBe(Code.InvalidArgument);
    expect(message).toBe("instance is required");
  });

  it("bulk-registers in one revision with a result per instance", async () => {
    const good = [instance({ serviceName: "reg-bulk" }), instance({ serviceName: "reg-bulk" })];
    const res = await registry.bulkRegister({ instances: [good[0]!, instance({ weight: 500 }), good[1]!] }, opts);
    expect(res.results.map((r) => r.registered)).toEqual([true, false, true]);
    expect(res.results[1]!.error).toContain("weight");
    expect(res.revision).toBeGreaterThan(0n);
    const resolved = await registry.resolve({ serviceName: "reg-bulk" }, opts);
    expect(resolved.instances).toHaveLength(2);
  });

  it("bulk-register with fail_fast stops at the first failure", async () => {
    const dup = instance({ serviceName: "reg-ff" });
    await registry.register({ instance: dup }, opts);
    const after = instance({ serviceName: "reg-ff" });
    const res = await registry.bulkRegister({ instances: [dup, after], failFast: true }, opts);
    expect(res.results.map((r) => r.registered)).toEqual([false, false]);
    expect(res.results[0]!.error).toContain(dup.instanceId as string);
    expect(res.results[1]!.error).toBe("");
    expect((await registry.resolve({ serviceName: "reg-ff" }, opts)).instances).toHaveLength(1);
  });

  it("deregisters, then NOT_FOUND for the same id", async () => {
    const sent = instance({ serviceName: "reg-dereg" });
    await registry.register({ instance: sent }, opts);
    const res = await registry.deregister({ instanceId: sent.instanceId as string }, opts);
    expect(res.revision).toBeGreaterThan(0n);
    expect((await codeOf(registry.deregister({ instanceId: sent.instanceId as string }, opts))).code).toBe(Code.NotFound);
  });

  it("heartbeats a known instance and refuses an unknown one", async () => {
    const sent = instance({ serviceName: "reg-hb" });
    await registry.register({ instance: sent }, opts);
    const before = await registry.resolve({ serviceName: "reg-hb" }, opts);
    expect(before.instances[0]!.activeConnections).toBe(0);
    const res = await registry.heartbeat({ instanceId: sent.instanceId as string, activeConnections: 7 }, opts);
    expect(res.lastHeartbeat).toBeDefined();
    expect(res.revision).toBe(0n);
    const [state] = (await registry.resolve({ serviceName: "reg-hb" }, opts)).instances;
    expect(state!.activeConnections).toBe(7);
    expect((await codeOf(registry.heartbeat({ instanceId: "nobody" }, opts))).code).toBe(Code.NotFound);
  });

  it("records health; an unhealthy instance leaves healthy-only resolution", async () => {
    const sent = instance({ serviceName: "reg-health" });
    await registry.register({ instance: sent }, opts);
    const res = await registry.updateHealth(
      { status: { instanceId: sent.instanceId as string, healthy: false, latencyMs: 12, consecutiveFailures: 1, reason: "503" } },
      opts,
    );
    expect(res.instance!.healthy).toBe(false);
    expect(res.instance!.health!.reason).toBe("503");
    expect(res.revision).toBeGreaterThan(0n);
    expect((await registry.resolve({ serviceName: "reg-health" }, opts)).instances).toHaveLength(0);
    expect((await registry.resolve({ serviceName: "reg-health", healthyOnly: false }, opts)).instances).toHaveLength(1);
    expect((await codeOf(registry.updateHealth({ status: { instanceId: "nobody", healthy: true } }, opts))).code).toBe(Code.NotFound);
  });

  it("resolves sorted by weight then instance_id, with region and min_weight filters", async () => {
    await registry.bulkRegister(
      {
        instances: [
          instance({ serviceName: "reg-resolve", instanceId: "b", weight: 10, region: "us" }),
          instance({ serviceName: "reg-resolve", instanceId: "a", weight: 10, region: "eu" }),
          instance({ serviceName: "reg-resolve", instanceId: "c", weight: 90, region: "eu" }),
        ],
      },
      opts,
    );
    const all = await registry.resolve({ serviceName: "reg-resolve" }, opts);
    expect(all.instances.map((i) => i.instance!.instanceId)).toEqual(["c", "a", "b"]);
    const eu = await registry.resolve({ serviceName: "reg-resolve", region: "eu", minWeight: 20 }, opts);
    expect(eu.instances.map((i) => i.instance!.instanceId)).toEqual(["c"]);
    expect((await codeOf(registry.resolve({ serviceName: "reg-resolve", minWeight: 101 }, opts))).code).toBe(Code.InvalidArgument);
  });

  it("selects with each strategy, prefers the region and falls back, and answers empty when nothing is routable", async () => {
    await registry.bulkRegister(
      {
        instances: [
          instance({ serviceName: "reg-select", instanceId: "s-eu", region: "eu" }),
          instance({ serviceName: "reg-select", instanceId: "s-us", region: "us" }),
        ],
      },
      opts,
    );
    for (const strategy of [SelectionStrategy.UNSPECIFIED, SelectionStrategy.ROUND_ROBIN, SelectionStrategy.LEAST_CONNECTIONS]) {
      const res = await registry.selectInstance({ serviceName: "reg-select", region: "eu", strategy }, opts);
      expect(res.instance!.instance!.instanceId).toBe("s-eu");
    }
    await registry.updateHealth({ status: { instanceId: "s-eu", healthy: false } }, opts);
    const fallback = await registry.selectInstance({ serviceName: "reg-select", region: "eu" }, opts);
    expect(fallback.instance!.instance!.instanceId).toBe("s-us");
    const none = await registry.selectInstance({ serviceName: "reg-nothing" }, opts);
    expect(none.instance).toBeUndefined();
  });

  it("counts the topology per service and region", async () => {
    await registry.bulkRegister(
      {
        instances: [
          instance({ serviceName: "reg-topo", region: "eu" }),
          instance({ serviceName: "reg-topo", region: "eu" }),
          instance({ serviceName: "reg-topo", region: "us" }),
        ],
      },
      opts,
    );
    const res = await registry.serviceTopology({}, opts);
    expect(res.services["reg-topo"]!.regions["eu"]).toMatchObject({ instances: 2, healthy: 2 });
    expect(res.services["reg-topo"]!.regions["us"]).toMatchObject({ instances: 1, healthy: 1 });
    expect(res.selfPreservation).toBe(false);
  });

  it("sweeps health results and evicts at the threshold", async () => {
    const a = instance({ serviceName: "reg-sweep" });
    const b = instance({ serviceName: "reg-sweep" });
    await registry.bulkRegister({ instances: [a, b] }, opts);
    const res = await registry.healthCheckSweep(
      {
        results: [
          { instanceId: a.instanceId as string, healthy: false, consecutiveFailures: 3 },
          { instanceId: b.instanceId as string, healthy: false, consecutiveFailures: 1 },
        ],
      },
      opts,
    );
    expect(res.evictedInstanceIds).toEqual([a.instanceId]);
    const left = await registry.resolve({ serviceName: "reg-sweep", healthyOnly: false }, opts);
    expect(left.instances.map((i) => i.instance!.instanceId)).toEqual([b.instanceId]);
    expect((await codeOf(registry.healthCheckSweep({ results: [], evictThreshold: 0 }, opts))).code).toBe(Code.InvalidArgument);
  });

  it("lists failover candidates outside the excluded regions", async () => {
    await registry.bulkRegister(
      {
        instances: [
          instance({ serviceName: "reg-failover", instanceId: "f-eu", region: "eu" }),
          instance({ serviceName: "reg-failover", instanceId: "f-us", region: "us" }),
          instance({ serviceName: "reg-failover", instanceId: "f-ap", region: "ap" }),
        ],
      },
      opts,
    );
    const res = await registry.failoverCandidates({ serviceName: "reg-failover", excludeRegions: ["eu", "ap"] }, opts);
    expect(res.instances.map((i) => i.instance!.instanceId)).toEqual(["f-us"]);
  });

  it("reports no stale instances while heartbeats are recent", async () => {
    const res = await registry.staleInstances({ serviceName: "reg-basic" }, opts);
    expect(res.instances).toEqual([]);
  });
});
