import { setTimeout as sleep } from "node:timers/promises";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryService, RemovalReason, TopologyEventType, type WatchTopologyResponse } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { controlPlanesPerTest, startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { instance } from "../../fixtures/registry.js";
import { nextWithin } from "../../fixtures/streams.js";

const opts = { timeoutMs: 5000 };

describe("staleness, eviction and self-preservation (real clock, short timeouts)", () => {
  let server: TestControlPlane | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it("marks an instance stale after the heartbeat timeout and fresh again on a heartbeat, with events", async () => {
    server = await startTestControlPlane({ flags: { "heartbeat-timeout": "0.3", "reap-interval": "0.05", "deregister-stale-after": "0" } });
    const registry = server.grpc(RegistryService);
    const sent = instance({ serviceName: "st-a" });
    await registry.register({ instance: sent }, opts);
    const stream = registry.watchTopology({ serviceNames: ["st-a"] }, { timeoutMs: 10_000 })[Symbol.asyncIterator]();
    expect((await nextWithin(stream)).value?.message.case).toBe("snapshot");

    const staleChange = (await nextWithin(stream, 3000)).value as WatchTopologyResponse;
    expect(staleChange.message.case).toBe("change");
    const staleEvent = staleChange.message.case === "change" ? staleChange.message.value.events[0] : undefined;
    expect(staleEvent?.type).toBe(TopologyEventType.UPDATED);
    expect(staleEvent?.instance?.stale).toBe(true);
    expect((await registry.staleInstances({}, opts)).instances.map((s) => s.instance!.instanceId)).toContain(sent.instanceId);
    expect((await registry.resolve({ serviceName: "st-a" }, opts)).instances).toHaveLength(0);
    expect((await registry.selectInstance({ serviceName: "st-a" }, opts)).instance).toBeUndefined();

    const beat = await registry.heartbeat({ instanceId: sent.instanceId as string }, opts);
    expect(beat.revision).toBeGreaterThan(0n);
    const fresh = (await nextWithin(stream)).value as WatchTopologyResponse;
    expect(fresh.message.case === "change" && fresh.message.value.revision).toBe(beat.revision);
    expect(fresh.message.case === "change" && fresh.message.value.events[0]!.instance!.stale).toBe(false);
    expect((await registry.resolve({ serviceName: "st-a" }, opts)).instances).toHaveLength(1);
    await stream.return?.();
  });

  it("evicts an instance stale for longer than deregister-stale-after while the rest of the fleet heartbeats", async () => {
    server = await startTestControlPlane({ flags: { "heartbeat-timeout": "0.2", "deregister-stale-after": "0.4", "reap-interval": "0.05" } });
    const registry = server.grpc(RegistryService);
    const alive = [instance({ serviceName: "st-b" }), instance({ serviceName: "st-b" }), instance({ serviceName: "st-b" })];
    const dying = instance({ serviceName: "st-b" });
    await registry.bulkRegister({ instances: [...alive, dying] }, opts);
    const stream = registry.watchTopology({ serviceNames: ["st-b"] }, { timeoutMs: 10_000 })[Symbol.asyncIterator]();
    await nextWithin(stream);
    const beats = setInterval(() => {
      for (const a of alive) void registry.heartbeat({ instanceId: a.instanceId as string }, opts).catch(() => undefined);
    }, 50);
    try {
      let removal;
      while (removal === undefined) {
        const message = (await nextWithin(stream, 3000)).value as WatchTopologyResponse;
        if (message.message.case !== "change") continue;
        removal = message.message.value.events.find((e) => e.type === TopologyEventType.REMOVED);
      }
      expect(removal.instance!.instance!.instanceId).toBe(dying.instanceId);
      expect(removal.reason).toBe(RemovalReason.EVICTED_STALE);
      const left = await registry.resolve({ serviceName: "st-b", healthyOnly: false }, opts);
      expect(left.instances).toHaveLength(3);
    } finally {
      clearInterval(beats);
      await stream.return?.();
    }
  });

  it("holds back evictions when most of the fleet goes stale at once (self-preservation) and releases on recovery", async () => {
    server = await startTestControlPlane({ flags: { "heartbeat-timeout": "0.2", "deregister-stale-after": "0.4", "reap-interval": "0.05" } });
    const registry = server.grpc(RegistryService);
    const fleet = [1, 2, 3, 4].map(() => instance({ serviceName: "st-c" }));
    await registry.bulkRegister({ instances: fleet }, opts);
    await expect.poll(async () => (await registry.serviceTopology({}, opts)).selfPreservation, { timeout: 3000, interval: 50 }).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await registry.resolve({ serviceName: "st-c", healthyOnly: false }, opts)).instances).toHaveLength(4);
    const metrics = await (await fetch(`${server.httpBaseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^latticeforge_registry_self_preservation 1$/m);

    // All at once: recovering one by one would let a pass evict the rest as
    // soon as no more than half of the fleet is stale, which is the rule.
    await Promise.all(fleet.map((member) => registry.heartbeat({ instanceId: member.instanceId as string }, opts)));
    await expect.poll(async () => (await registry.serviceTopology({}, opts)).selfPreservation, { timeout: 3000, interval: 20 }).toBe(false);
  });
});

describe("startup grace after a control-plane outage (real clock)", () => {
  const start = controlPlanesPerTest({ "heartbeat-timeout": "1", "reap-interval": "0.05", "deregister-stale-after": "0" });

  it("keeps instances routable for a heartbeat timeout after a restart that followed a longer outage, then marks the silent ones stale", async () => {
    const first = await start();
    const registry = first.grpc(RegistryService);
    const [beating, silent] = [instance({ serviceName: "st-grace" }), instance({ serviceName: "st-grace" })];
    const beatingId = beating!.instanceId as string;
    const silentId = silent!.instanceId as string;
    await registry.bulkRegister({ instances: [beating!, silent!] }, opts);
    const lastHeard = timestampMs((await registry.resolve({ serviceName: "st-grace" }, opts)).instances[0]!.instance!.lastHeartbeat!);
    await first.controlPlane.shutdown();
    await sleep(2500); // down for 2.5 × the heartbeat timeout

    const startingAt = Date.now();
    const second = await start({}, first.dir);
    const restarted = second.grpc(RegistryService);
    const beats = setInterval(() => void restarted.heartbeat({ instanceId: beatingId }, opts).catch(() => undefined), 200);
    try {
      // The store loads after startingAt, so the grace lasts until startingAt + 1 s at least.
      while (Date.now() < startingAt + 800) {
        const { instances } = await restarted.resolve({ serviceName: "st-grace" }, opts);
        expect(instances.map((state) => state.instance!.instanceId).sort()).toEqual([beatingId, silentId].sort());
        expect(instances.every((state) => !state.stale && state.effectiveWeight === 50)).toBe(true);
        const silentState = instances.find((state) => state.instance!.instanceId === silentId)!;
        expect(timestampMs(silentState.instance!.lastHeartbeat!)).toBe(lastHeard); // measured from the load, not faked
        await sleep(50);
      }
      // After the grace the silent instance turns stale; the one that checked in stays.
      await expect
        .poll(async () => (await restarted.staleInstances({}, opts)).instances.map((state) => state.instance!.instanceId), {
          timeout: 3000,
          interval: 50,
        })
        .toEqual([silentId]);
      const routable = await restarted.resolve({ serviceName: "st-grace" }, opts);
      expect(routable.instances.map((state) => state.instance!.instanceId)).toEqual([beatingId]);
    } finally {
      clearInterval(beats);
    }
  });
});
