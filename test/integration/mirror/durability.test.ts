import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MirrorMode, MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import {
  callOptions as opts,
  capture,
  jsonValue,
  mirrorConfig,
  orderService,
  productionOrder,
  startShadow,
  type CaptureInit,
  type TestShadow,
} from "../../fixtures/mirror.js";

function order(requestId: string, qty: number): CaptureInit {
  return capture(requestId, {
    payload: { orderId: requestId, qty },
    headers: { authorization: "Bearer s3cr3t", "x-session": "abc" },
    productionResponse: jsonValue(productionOrder(requestId, qty)),
  });
}

async function* stream(captures: CaptureInit[]): AsyncGenerator<{ capture: CaptureInit }> {
  for (const item of captures) yield { capture: item };
}

describe("MirrorService across a restart on the same database", () => {
  let dir: string;
  let shadow: TestShadow;
  const servers: TestControlPlane[] = [];
  const start = async (): Promise<TestControlPlane> => {
    const server = await startTestControlPlane({ dir });
    servers.push(server);
    return server;
  };
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "mirror-durable-"));
    shadow = await startShadow(orderService("candidate"));
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
    await shadow.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps acknowledged captures pending and drainable, and every counter, tally and config", async () => {
    const first = await start();
    const mirror = first.grpc(MirrorService);
    await mirror.addMirror({ mirror: mirrorConfig("durable", shadow.url, { bufferSize: 100, redactHeaders: ["x-session"], ignoreFields: ["generatedAt"] }) }, opts);
    await mirror.addMirror({ mirror: mirrorConfig("small", shadow.url, { bufferSize: 2 }) }, opts);
    await mirror.addMirror({ mirror: mirrorConfig("replay", shadow.url, { mode: MirrorMode.REPLAY, enabled: false }) }, opts);
    const streamed = await mirror.captureStream(stream(Array.from({ length: 30 }, (_, i) => order(`o-${i}`, (i % 4) + 1))), opts);
    expect(streamed.captures).toBe(30);
    await mirror.capture(order("o-30", 3), opts);
    await mirror.dispatch({ mirrorId: "durable", batchSize: 8 }, opts);
    await mirror.drain({ mirrorId: "durable", limit: 2 }, opts);
    const statsBefore = await mirror.stats({}, opts);
    const analysisBefore = await mirror.analyzeDiffs({ mirrorId: "durable" }, opts);
    const listBefore = await mirror.listMirrors({}, opts);
    expect(statsBefore.mirrors.map(({ mirrorId, captured, dropped, pending, dispatched, diffs }) => ({ mirrorId, captured, dropped, pending, dispatched, diffs }))).toEqual([
      { mirrorId: "durable", captured: 31n, dropped: 0n, pending: 21n, dispatched: 8n, diffs: 4n },
      { mirrorId: "replay", captured: 0n, dropped: 0n, pending: 0n, dispatched: 0n, diffs: 0n },
      { mirrorId: "small", captured: 2n, dropped: 29n, pending: 2n, dispatched: 0n, diffs: 0n },
    ]);
    await first.controlPlane.shutdown();

    const second = await start();
    const mirror2 = second.grpc(MirrorService);
    expect(await mirror2.listMirrors({}, opts)).toEqual(listBefore);
    expect(await mirror2.stats({}, opts)).toEqual(statsBefore);
    expect(await mirror2.analyzeDiffs({ mirrorId: "durable" }, opts)).toEqual(analysisBefore);
    expect((await mirror2.pendingCount({}, opts)).pending).toBe(23n);
    const drained = (await mirror2.drain({ mirrorId: "durable", limit: 5 }, opts)).requests;
    expect(drained.map((r) => r.requestId)).toEqual(["o-10", "o-11", "o-12", "o-13", "o-14"]);
    expect(drained[0]!.headers).toEqual({ authorization: "[REDACTED]", "x-session": "[REDACTED]" });
    expect(drained[0]!.productionResponse).toEqual(jsonValue(productionOrder("o-10", 3)));
    // Dispatch goes on where it left off, and the counters keep adding up.
    const dispatched = (await mirror2.dispatch({ mirrorId: "durable" }, opts)).results;
    expect(dispatched.map((r) => r.requestId)).toEqual(Array.from({ length: 16 }, (_, i) => `o-${i + 15}`));
    const after = (await mirror2.stats({}, opts)).mirrors.find((m) => m.mirrorId === "durable")!;
    expect(after).toMatchObject({ captured: 31n, pending: 0n, dispatched: 24n });
    expect((await mirror2.analyzeDiffs({ mirrorId: "durable" }, opts)).results).toBe(24n);
    // Buffers still hold their size: the small one is still full.
    expect((await mirror2.capture(order("o-31", 1), opts)).mirrors.find((m) => m.mirrorId === "small")).toMatchObject({ queued: 0, dropped: 1 });
    // The revision continues after the last one before the restart.
    const added = await mirror2.addMirror({ mirror: mirrorConfig("later", shadow.url) }, opts);
    expect(added.revision).toBe(listBefore.revision + 1n);
  });

  it("keeps 2,000 streamed captures acknowledged just before the shutdown", async () => {
    const first = await start();
    const mirror = first.grpc(MirrorService);
    await mirror.addMirror({ mirror: mirrorConfig("bulk", shadow.url, { bufferSize: 5000 }) }, opts);
    const response = await mirror.captureStream(stream(Array.from({ length: 2000 }, (_, i) => order(`b-${i}`, 1))), opts);
    expect(response.mirrors).toEqual([expect.objectContaining({ mirrorId: "bulk", queued: 2000, dropped: 0 })]);
    await first.controlPlane.shutdown();

    const second = await start();
    const mirror2 = second.grpc(MirrorService);
    expect((await mirror2.pendingCount({ mirrorId: "bulk" }, opts)).pending).toBe(2000n);
    const all = (await mirror2.drain({ mirrorId: "bulk", limit: 10_000 }, opts)).requests.map((r) => r.requestId);
    expect(all).toEqual(Array.from({ length: 2000 }, (_, i) => `b-${i}`));
  });

  it("restarts with a removed mirror's buffer gone and a disabled mirror still disabled", async () => {
    const first = await start();
    const mirror = first.grpc(MirrorService);
    await mirror.addMirror({ mirror: mirrorConfig("keep", shadow.url) }, opts);
    await mirror.addMirror({ mirror: mirrorConfig("drop", shadow.url) }, opts);
    await mirror.capture(order("x-1", 1), opts);
    await mirror.removeMirror({ mirrorId: "drop" }, opts);
    await mirror.disableMirror({ mirrorId: "keep" }, opts);
    await first.controlPlane.shutdown();

    const second = await start();
    const mirror2 = second.grpc(MirrorService);
    expect((await mirror2.listMirrors({}, opts)).mirrors.map((m) => [m.mirrorId, m.enabled])).toEqual([["keep", false]]);
    expect((await mirror2.pendingCount({}, opts)).pending).toBe(1n);
    expect((await mirror2.capture(order("x-2", 1), opts)).mirrors).toEqual([]);
    await mirror2.addMirror({ mirror: mirrorConfig("drop", shadow.url) }, opts);
    expect((await mirror2.pendingCount({ mirrorId: "drop" }, opts)).pending).toBe(0n);
  });
});
