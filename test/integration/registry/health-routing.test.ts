import type { Client } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  RegistryService,
  SelectionStrategy,
  TopologyEventType,
  type InstanceState,
  type TopologyEvent,
  type WatchTopologyResponse,
} from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { warmupFactor } from "../../../server/core/registry/health-score.js";
import { controlPlanesPerTest, type TestControlPlane } from "../../fixtures/control-plane.js";
import { instance } from "../../fixtures/registry.js";
import { nextWithin } from "../../fixtures/streams.js";

const opts = { timeoutMs: 5000 };
const allStrategies = [
  SelectionStrategy.WEIGHTED_RANDOM,
  SelectionStrategy.ROUND_ROBIN,
  SelectionStrategy.LEAST_CONNECTIONS,
  SelectionStrategy.POWER_OF_TWO_CHOICES,
];
/**
 * Short enough to watch it happen: the score's time constant is 0.2 s, a
 * check at 1000 ms scores 0.1 (target 100 ms), a warm-up lasts 0.6 s (a ramp
 * step every 60 ms) and the staleness pass runs every 20 ms.
 */
const fastScoring = { "health-window": "0.2", "health-latency-target": "100", warmup: "0.6", "reap-interval": "0.02" };

type Stream = AsyncIterator<WatchTopologyResponse>;

function watch(registry: Client<typeof RegistryService>, serviceName: string): Stream {
  return registry.watchTopology({ serviceNames: [serviceName] }, { timeoutMs: 30_000 })[Symbol.asyncIterator]();
}

/** The events of the next change message (progress skipped), each read within 3 s. */
async function nextEvents(stream: Stream): Promise<{ revision: bigint; events: TopologyEvent[] }> {
  for (;;) {
    const result = await nextWithin(stream, 3000);
    if (result.done === true) throw new Error("stream ended");
    const { message } = result.value;
    if (message.case === "change") return { revision: message.value.revision, events: message.value.events };
  }
}

async function resolveAll(registry: Client<typeof RegistryService>, serviceName: string): Promise<Map<string, InstanceState>> {
  const { instances } = await registry.resolve({ serviceName, healthyOnly: false }, opts);
  return new Map(instances.map((state) => [state.instance!.instanceId, state]));
}

async function metricLines(server: TestControlPlane, instanceId: string): Promise<string[]> {
  const text = await (await fetch(`${server.httpBaseUrl}/metrics`)).text();
  return text.split("\n").filter((line) => line.includes(`instance_id="${instanceId}"`));
}

describe.each(["grpc", "connect"] as const)("health-aware routing over %s", (transport) => {
  const start = controlPlanesPerTest(fastScoring);
  const client = (server: TestControlPlane): Client<typeof RegistryService> =>
    transport === "grpc" ? server.grpc(RegistryService) : server.http(RegistryService);

  it("shows score, degraded, warm-up and effective weight in Register and Resolve", async () => {
    const registry = client(await start());
    const registered = await registry.register({ instance: instance({ serviceName: "hr-fields", instanceId: "f1", weight: 40 }) }, opts);
    expect(registered.instance).toMatchObject({ healthScore: 1, degraded: false, warmingUp: false, effectiveWeight: 40 });
    const [state] = (await registry.resolve({ serviceName: "hr-fields" }, opts)).instances;
    expect(state).toMatchObject({ healthScore: 1, degraded: false, warmingUp: false, effectiveWeight: 40 });
    expect(state!.warmupEndsAt).toBeUndefined();
  });

  it("takes a latency-degraded instance out of SelectInstance and healthy-only Resolve after the window, as one UPDATED revision", async () => {
    const server = await start();
    const registry = client(server);
    const service = "hr-degrade";
    await registry.bulkRegister(
      {
        instances: [
          instance({ serviceName: service, instanceId: "slow", weight: 100 }),
          instance({ serviceName: service, instanceId: "fast", weight: 10 }),
        ],
      },
      opts,
    );
    const stream = watch(registry, service);
    expect((await nextWithin(stream)).value?.message.case).toBe("snapshot");

    // Healthy, no failures, no connections, the highest weight — but slow.
    const checked = await registry.updateHealth({ status: { instanceId: "slow", healthy: true, latencyMs: 1000, consecutiveFailures: 0 } }, opts);
    expect(checked.revision).toBe(0n);
    expect(checked.instance).toMatchObject({ healthy: true, degraded: false });
    await registry.heartbeat({ instanceId: "fast", activeConnections: 50 }, opts);

    // 0.1 + 0.9·e^(−t/0.2 s) < 0.3 after ≈ 0.3 s; the next pass announces it.
    const { revision, events } = await nextEvents(stream);
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe(TopologyEventType.UPDATED);
    expect(events[0]!.instance).toMatchObject({ instance: { instanceId: "slow" }, healthy: true, stale: false, degraded: true, effectiveWeight: 0 });
    expect(events[0]!.instance!.healthScore).toBeLessThan(0.3);

    for (const strategy of allStrategies) {
      for (let i = 0; i < 10; i++) {
        expect((await registry.selectInstance({ serviceName: service, strategy }, opts)).instance?.instance?.instanceId).toBe("fast");
      }
    }
    const healthyOnly = await registry.resolve({ serviceName: service }, opts);
    expect(healthyOnly.instances.map((s) => s.instance!.instanceId)).toEqual(["fast"]);
    expect(healthyOnly.revision).toBe(revision);
    const all = await resolveAll(registry, service);
    expect(all.get("slow")).toMatchObject({ degraded: true, effectiveWeight: 0, healthy: true });
    expect(all.get("slow")!.healthScore).toBeLessThan(0.3);
    expect(all.get("fast")).toMatchObject({ degraded: false, effectiveWeight: 10 });

    // A plain heartbeat is no revision, even for a degraded instance.
    expect((await registry.heartbeat({ instanceId: "slow", activeConnections: 0 }, opts)).revision).toBe(0n);

    const lines = await metricLines(server, "slow");
    expect(lines).toContain(`latticeforge_registry_instance_effective_weight{service="${service}",instance_id="slow"} 0`);
    const score = lines.find((line) => line.startsWith("latticeforge_registry_instance_health_score{"));
    expect(Number(score?.split(" ")[1])).toBeLessThan(0.3);
    const metrics = await (await fetch(`${server.httpBaseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^latticeforge_registry_degraded_instances 1$/m);
    expect(metrics).toMatch(/^latticeforge_registry_warming_instances 0$/m);
    await stream.return?.();
  });

  it("warms a recovered instance up from 10% to its full weight, one UPDATED revision per ramp step", async () => {
    const server = await start();
    const registry = client(server);
    const service = "hr-warmup";
    await registry.bulkRegister(
      { instances: [instance({ serviceName: service, instanceId: "back", weight: 50 }), instance({ serviceName: service, instanceId: "other" })] },
      opts,
    );
    const stream = watch(registry, service);
    expect((await nextWithin(stream)).value?.message.case).toBe("snapshot");

    const failed = await registry.updateHealth({ status: { instanceId: "back", healthy: false, consecutiveFailures: 1 } }, opts);
    expect((await nextEvents(stream)).revision).toBe(failed.revision);
    // e^(−t/0.2 s) < 0.3 after ≈ 0.24 s: degraded, quietly (it is out of routing already).
    await expect.poll(async () => (await resolveAll(registry, service)).get("back")?.degraded, { timeout: 3000, interval: 20 }).toBe(true);

    const passed = await registry.updateHealth({ status: { instanceId: "back", healthy: true, latencyMs: 5 } }, opts);
    expect(passed.instance).toMatchObject({ healthy: true, degraded: true, warmingUp: false, effectiveWeight: 0 });
    const flip = await nextEvents(stream);
    expect(flip.revision).toBe(passed.revision);

    // The score climbs back over 0.3, then the ramp runs: 5, 6, 8, ... 40 while warming up, then 50
    // (50 × 0.1 × 10^(step/10), rounded for the int32 field).
    const seen: InstanceState[] = [];
    while (seen.length === 0 || seen[seen.length - 1]!.warmingUp) {
      const { events } = await nextEvents(stream);
      expect(events.map((e) => [e.type, e.instance!.instance!.instanceId])).toEqual([[TopologyEventType.UPDATED, "back"]]);
      seen.push(events[0]!.instance!);
    }
    const ramp = Array.from({ length: 11 }, (_, step) => Math.round(50 * warmupFactor(step)));
    expect(ramp).toEqual([5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50]);
    const weights = seen.map((s) => s.effectiveWeight);
    expect(weights[0]).toBe(5);
    expect(weights[weights.length - 1]).toBe(50);
    for (const [i, weight] of weights.entries()) {
      expect(ramp).toContain(weight);
      if (i > 0) expect(weight).toBeGreaterThan(weights[i - 1]!);
    }
    const warming = seen.slice(0, -1);
    expect(warming.every((s) => s.warmingUp && !s.degraded && s.warmupEndsAt !== undefined)).toBe(true);
    const endsAt = timestampMs(warming[0]!.warmupEndsAt!);
    expect(warming.every((s) => timestampMs(s.warmupEndsAt!) === endsAt)).toBe(true);
    expect(seen[seen.length - 1]!.warmupEndsAt).toBeUndefined();
    expect((await resolveAll(registry, service)).get("back")).toMatchObject({ warmingUp: false, effectiveWeight: 50 });
    expect(await metricLines(server, "back")).toContain(
      `latticeforge_registry_instance_effective_weight{service="${service}",instance_id="back"} 50`,
    );
    await stream.return?.();
  });

  it("selects with power-of-two-choices: of two instances, always the less loaded", async () => {
    const registry = client(await start());
    const service = "hr-p2c";
    await registry.bulkRegister(
      { instances: [instance({ serviceName: service, instanceId: "p1" }), instance({ serviceName: service, instanceId: "p2" })] },
      opts,
    );
    const pick = async (): Promise<string | undefined> =>
      (await registry.selectInstance({ serviceName: service, strategy: SelectionStrategy.POWER_OF_TWO_CHOICES }, opts)).instance?.instance
        ?.instanceId;
    await registry.heartbeat({ instanceId: "p1", activeConnections: 9 }, opts);
    await registry.heartbeat({ instanceId: "p2", activeConnections: 2 }, opts);
    for (let i = 0; i < 20; i++) expect(await pick()).toBe("p2");
    await registry.heartbeat({ instanceId: "p2", activeConnections: 20 }, opts);
    for (let i = 0; i < 20; i++) expect(await pick()).toBe("p1");
  });
});

describe("health-aware routing across a restart", () => {
  const start = controlPlanesPerTest({ ...fastScoring, warmup: "120" });

  it("keeps scores and warm-ups: the same effective weight and end after the restart", async () => {
    const first = await start();
    const dir = first.dir;
    const registry = first.grpc(RegistryService);
    await registry.bulkRegister(
      { instances: [instance({ serviceName: "hr-restart", instanceId: "r1", weight: 60 }), instance({ serviceName: "hr-restart", instanceId: "slow" })] },
      opts,
    );
    await registry.updateHealth({ status: { instanceId: "r1", healthy: false, consecutiveFailures: 1 } }, opts);
    const back = await registry.updateHealth({ status: { instanceId: "r1", healthy: true, latencyMs: 5 } }, opts);
    expect(back.instance).toMatchObject({ warmingUp: true, effectiveWeight: 6 });
    await registry.updateHealth({ status: { instanceId: "slow", healthy: true, latencyMs: 1000 } }, opts);
    await expect.poll(async () => (await resolveAll(registry, "hr-restart")).get("slow")?.degraded, { timeout: 3000, interval: 20 }).toBe(true);
    const before = await resolveAll(registry, "hr-restart");
    await first.controlPlane.shutdown();

    const second = await start({}, dir);
    const after = await resolveAll(second.grpc(RegistryService), "hr-restart");
    expect(after.get("r1")).toMatchObject({ warmingUp: true, effectiveWeight: 6, healthScore: before.get("r1")!.healthScore });
    expect(timestampMs(after.get("r1")!.warmupEndsAt!)).toBe(timestampMs(before.get("r1")!.warmupEndsAt!));
    expect(after.get("slow")).toMatchObject({ degraded: true, effectiveWeight: 0 });
    expect(after.get("slow")!.healthScore).toBe(before.get("slow")!.healthScore);
  });
});

describe("effective weight of a light warming instance", () => {
  const start = controlPlanesPerTest({ ...fastScoring, warmup: "120" });

  it("is 0.4 for weight 4 at step 0: unrounded in the metric, 1 (nearest, at least 1) in InstanceState", async () => {
    const server = await start();
    const registry = server.grpc(RegistryService);
    await registry.register({ instance: instance({ serviceName: "hr-light", instanceId: "light", weight: 4 }) }, opts);
    await registry.updateHealth({ status: { instanceId: "light", healthy: false, consecutiveFailures: 1 } }, opts);
    const back = await registry.updateHealth({ status: { instanceId: "light", healthy: true, latencyMs: 5 } }, opts);
    expect(back.instance).toMatchObject({ warmingUp: true, effectiveWeight: 1 });
    expect((await resolveAll(registry, "hr-light")).get("light")).toMatchObject({ warmingUp: true, effectiveWeight: 1 });
    expect(await metricLines(server, "light")).toContain(
      'latticeforge_registry_instance_effective_weight{service="hr-light",instance_id="light"} 0.4',
    );
  });
});
