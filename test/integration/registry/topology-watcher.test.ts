import { afterEach, describe, expect, it } from "vitest";
import { GrpcConnection } from "../../../client/grpc-client.js";
import { TopologyWatcher } from "../../../client/topology-watcher.js";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { startTestControlPlane } from "../../fixtures/control-plane.js";
import { instance } from "../../fixtures/registry.js";
import { within } from "../../fixtures/streams.js";

const opts = { timeoutMs: 5000 };

describe("TopologyWatcher (client-side topology copy)", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("mirrors the registry through snapshot, changes and a server restart on the same port and database", async () => {
    const first = await startTestControlPlane();
    const port = first.controlPlane.grpcPort;
    const conn = new GrpcConnection({ address: first.grpcAddress });
    cleanups.push(() => conn.close());
    const registry = conn.client(RegistryService);
    await registry.register({ instance: instance({ serviceName: "tw", instanceId: "tw-1" }) }, opts);

    const errors: string[] = [];
    const watcher = new TopologyWatcher(registry, { serviceNames: ["tw"], initialBackoffMs: 20, onError: (e) => errors.push(e.message) });
    cleanups.push(() => watcher.close());
    await within(watcher.ready, 5000, "first snapshot");
    expect(watcher.instances("tw").map((s) => s.instance!.instanceId)).toEqual(["tw-1"]);

    const added = await registry.register({ instance: instance({ serviceName: "tw", instanceId: "tw-2" }) }, opts);
    await expect.poll(() => watcher.revision, { timeout: 5000 }).toBe(added.revision);
    expect(watcher.instances("tw").map((s) => s.instance!.instanceId)).toEqual(["tw-1", "tw-2"]);

    await first.controlPlane.shutdown();
    const second = await startTestControlPlane({ dir: first.dir, flags: { listen: `127.0.0.1:${port}` } });
    cleanups.push(() => second.stop());
    const removed = await registry.deregister({ instanceId: "tw-1" }, opts).catch(async () => {
      // The shared connection may still be reconnecting; retry once it is back.
      await conn.waitForReady(5000);
      return registry.deregister({ instanceId: "tw-1" }, opts);
    });
    await expect.poll(() => watcher.revision, { timeout: 10_000 }).toBe(removed.revision);
    expect(watcher.instances("tw").map((s) => s.instance!.instanceId)).toEqual(["tw-2"]);
    expect(errors.length).toBeGreaterThan(0); // it did lose the stream, and recovered by revision
  });
});
