import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  RegistryService,
  RemovalReason,
  TopologyEventType,
  type WatchTopologyResponse,
} from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { controlPlanesPerTest } from "../../fixtures/control-plane.js";
import { instance } from "../../fixtures/registry.js";
import { nextWithin, within } from "../../fixtures/streams.js";
import { TopologyWatcher } from "../../../client/topology-watcher.js";

type Stream = AsyncIterator<WatchTopologyResponse>;

function watch(registry: Client<typeof RegistryService>, request: { serviceNames?: string[]; startRevision?: number }): Stream {
  return registry.watchTopology(
    { serviceNames: request.serviceNames ?? [], startRevision: BigInt(request.startRevision ?? 0) },
    { timeoutMs: 30_000 },
  )[Symbol.asyncIterator]();
}

async function next(stream: Stream, timeoutMs = 5000): Promise<WatchTopologyResponse> {
  const result = await nextWithin(stream, timeoutMs);
  if (result.done === true) throw new Error("stream ended");
  return result.value;
}

/** Reads changes until `revision` is reached; returns every change revision seen (skipping progress). */
async function readChangesThrough(stream: Stream, revision: number): Promise<number[]> {
  const seen: number[] = [];
  while (seen.length === 0 || seen[seen.length - 1]! < revision) {
    const message = await next(stream);
    if (message.message.case === "change") seen.push(Number(message.message.value.revision));
  }
  return seen;
}

/** A response's revision as a number. */
const rev = (response: { revision: bigint }): number => Number(response.revision);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const opts = { timeoutMs: 5000 };

describe("WatchTopology", () => {
  const start = controlPlanesPerTest({ "max-instances-per-service": "1000" });

  it("sends a snapshot at revision R, then each change after R in order", async () => {
    const server = await start();
    const registry = server.grpc(RegistryService);
    const first = await registry.register({ instance: instance({ serviceName: "w-basic", instanceId: "w1" }) }, opts);
    const stream = watch(registry, {});
    const snapshot = await next(stream);
    expect(snapshot.message.case).toBe("snapshot");
    if (snapshot.message.case !== "snapshot") return;
    expect(snapshot.message.value.revision).toBe(first.revision);
    expect(snapshot.message.value.reset).toBe(false);
    expect(snapshot.message.value.instances.map((i) => i.instance!.instanceId)).toEqual(["w1"]);

    const added = await registry.register({ instance: instance({ serviceName: "w-basic", instanceId: "w2" }) }, opts);
    const removed = await registry.deregister({ instanceId: "w1" }, opts);
    const change1 = await next(stream);
    const change2 = await next(stream);
    expect(change1.message.case === "change" && change1.message.value).toMatchObject({ revision: added.revision });
    expect(change1.message.case === "change" && change1.message.value.events[0]!.type).toBe(TopologyEventType.ADDED);
    expect(change2.message.case === "change" && change2.message.value).toMatchObject({ revision: removed.revision });
    const event = change2.message.case === "change" ? change2.message.value.events[0]! : undefined;
    expect(event?.type).toBe(TopologyEventType.REMOVED);
    expect(event?.reason).toBe(RemovalReason.DEREGISTERED);
    expect(event?.instance?.instance?.instanceId).toBe("w1");
    await stream.return?.();
  });

  it("delivers only the watched services, in one message per revision", async () => {
    const server = await start();
    const registry = server.grpc(RegistryService);
    const stream = watch(registry, { serviceNames: ["w-a"] });
    expect((await next(stream)).message.case).toBe("snapshot");
    await registry.register({ instance: instance({ serviceName: "w-b" }) }, opts);
    const bulk = await registry.bulkRegister(
      { instances: [instance({ serviceName: "w-a", instanceId: "a1" }), instance({ serviceName: "w-b" }), instance({ serviceName: "w-a", instanceId: "a2" })] },
      opts,
    );
    const change = await next(stream);
    expect(change.message.case).toBe("change");
    if (change.message.case !== "change") return;
    expect(change.message.value.revision).toBe(bulk.revision);
    expect(change.message.value.events.map((e) => e.instance!.instance!.instanceId)).toEqual(["a1", "a2"]);
    await stream.return?.();
  });

  it("resumes after N with exactly the changes after N, across a server restart on the same database", async () => {
    const first = await start();
    const dir = first.dir;
    const registry = first.grpc(RegistryService);
    const stream = watch(registry, {});
    const snapshot = await next(stream);
    const base = snapshot.message.case === "snapshot" ? rev(snapshot.message.value) : -1;
    const revisions: number[] = [];
    for (let i = 0; i < 5; i++) revisions.push(rev(await registry.register({ instance: instance({ serviceName: "w-resume" }) }, opts)));
    expect(revisions).toEqual(range(base + 1, base + 5));
    // The client saw up to the third change, then lost its connection.
    expect(await readChangesThrough(stream, revisions[2]!)).toEqual(revisions.slice(0, 3));
    const lastSeen = revisions[2]!;
    await first.controlPlane.shutdown();
    // Messages still in flight are dropped unprocessed, as by a crashing client.
    let end: unknown;
    while (end === undefined) end = await nextWithin(stream).then(() => undefined, (e: unknown) => e);
    expect(end).toBeInstanceOf(ConnectError);
    expect((end as ConnectError).code).toBe(Code.Unavailable);

    const second = await start({}, dir);
    const registry2 = second.grpc(RegistryService);
    const later = rev(await registry2.register({ instance: instance({ serviceName: "w-resume" }) }, opts));
    expect(later).toBe(revisions[4]! + 1);
    const resumed = watch(registry2, { startRevision: lastSeen });
    expect(await readChangesThrough(resumed, later)).toEqual([revisions[3], revisions[4], later]);
    expect((await registry2.resolve({ serviceName: "w-resume" }, opts)).instances).toHaveLength(6);
    await resumed.return?.();
  });

  it("answers a start revision older than the retained history with a reset snapshot", async () => {
    const server = await start({ "history-changes": "2", "history-age": "0", "compact-interval": "0.05" });
    const registry = server.grpc(RegistryService);
    let last = 0;
    for (let i = 0; i < 6; i++) last = rev(await registry.register({ instance: instance({ serviceName: "w-reset" }) }, opts));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stream = watch(registry, { startRevision: 1 });
    const message = await next(stream);
    expect(message.message.case).toBe("snapshot");
    if (message.message.case !== "snapshot") return;
    expect(message.message.value.reset).toBe(true);
    expect(rev(message.message.value)).toBe(last);
    expect(message.message.value.instances).toHaveLength(6);
    // Within the retained history, resuming still works.
    const recent = watch(registry, { startRevision: last - 1 });
    expect(await readChangesThrough(recent, last)).toEqual([last]);
    await stream.return?.();
    await recent.return?.();
  });

  it("answers a start revision the server never reached (its database was replaced) with a reset snapshot", async () => {
    const server = await start();
    const registry = server.grpc(RegistryService);
    const current = rev(await registry.register({ instance: instance({ serviceName: "w-future" }) }, opts));
    const stream = watch(registry, { startRevision: current + 50 });
    const message = await next(stream);
    expect(message.message.case === "snapshot" && message.message.value).toMatchObject({ reset: true });
    expect(message.message.case === "snapshot" && rev(message.message.value)).toBe(current);
    await stream.return?.();
  });

  it("splits a snapshot larger than the message size limit into several messages of one revision", async () => {
    const server = await start({ "max-message-bytes": "65536" });
    const registry = server.grpc(RegistryService);
    const heavy = { a: "a".repeat(1000), b: "b".repeat(1000), c: "c".repeat(1000) };
    let bulk = { revision: 0n };
    for (let part = 0; part < 4; part++) {
      const instances = Array.from({ length: 10 }, (_, i) => instance({ serviceName: "w-big", instanceId: `big-${part * 10 + i}`, metadata: heavy }));
      bulk = await registry.bulkRegister({ instances }, opts);
    }
    const stream = watch(registry, { serviceNames: ["w-big"] });
    const parts: { revision: number; ids: string[] }[] = [];
    for (;;) {
      const message = await next(stream);
      if (message.message.case !== "snapshot") throw new Error(`expected a snapshot part, got ${message.message.case}`);
      parts.push({ revision: rev(message.message.value), ids: message.message.value.instances.map((i) => i.instance!.instanceId) });
      if (!message.message.value.more) break;
    }
    expect(parts.length).toBeGreaterThan(1);
    expect(new Set(parts.map((p) => p.revision))).toEqual(new Set([rev(bulk)]));
    expect(parts.flatMap((p) => p.ids).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `big-${i}`).sort());
    await stream.return?.();

    const watcher = new TopologyWatcher(registry, { serviceNames: ["w-big"] });
    try {
      await within(watcher.ready, 5000, "chunked snapshot");
      expect(watcher.instances("w-big")).toHaveLength(40);
    } finally {
      watcher.close();
    }
  });

  it("keeps revisions gap-free under concurrent writers from several clients", async () => {
    const server = await start();
    const clients = [server.grpc(RegistryService), server.http(RegistryService), server.grpc(RegistryService), server.http(RegistryService)];
    const stream = watch(clients[0]!, {});
    const snapshot = await next(stream);
    const base = snapshot.message.case === "snapshot" ? rev(snapshot.message.value) : -1;
    const results = await Promise.all(
      clients.flatMap((client, c) =>
        Array.from({ length: 25 }, () => client.register({ instance: instance({ serviceName: `w-conc-${c}` }) }, opts)),
      ),
    );
    const revisions = results.map(rev).sort((a, b) => a - b);
    expect(revisions).toEqual(range(base + 1, base + 100));
    expect(await readChangesThrough(stream, base + 100)).toEqual(range(base + 1, base + 100));
    await stream.return?.();
  });

  it("lets a watcher that does not read fall behind without stalling the others, then catch up gap-free", async () => {
    const server = await start({ "watch-queue-size": "4" });
    const registry = server.grpc(RegistryService);
    const slow = watch(registry, {});
    const fast = watch(registry, {});
    const first = (await next(slow)).message;
    const base = { revision: first.case === "snapshot" ? rev(first.value) : -1 };
    await next(fast);
    const writes = 800;
    const big = { note: "x".repeat(300) };
    let last = 0;
    const fastSeen = readChangesThrough(fast, base.revision + writes);
    for (let i = 0; i < writes / 100; i++) {
      const batch = await Promise.all(
        Array.from({ length: 100 }, () => registry.register({ instance: instance({ serviceName: `w-slow-${i}`, metadata: big }) }, opts)),
      );
      last = Math.max(last, ...batch.map(rev));
    }
    expect(last).toBe(base.revision + writes);
    expect(await fastSeen).toEqual(range(base.revision + 1, last));
    // The idle watcher overflowed its queue and waits to catch up from the log.
    const metrics = await (await fetch(`${server.httpBaseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^latticeforge_topology_unsynced_watchers 1$/m);
    expect(await readChangesThrough(slow, last)).toEqual(range(base.revision + 1, last));
    await slow.return?.();
    await fast.return?.();
  });

  it("sends PROGRESS with the current revision when idle", async () => {
    const server = await start({ "watch-progress-interval": "0.05" });
    const registry = server.grpc(RegistryService);
    const current = rev(await registry.register({ instance: instance({ serviceName: "w-progress" }) }, opts));
    const stream = watch(registry, { startRevision: current });
    const message = await next(stream, 2000);
    expect(message.message.case).toBe("progress");
    expect(message.message.case === "progress" && rev(message.message.value)).toBe(current);
    await stream.return?.();
  });
});
