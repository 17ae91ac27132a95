import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  MirrorEventType,
  MirrorService,
  type MirrorChange,
  type WatchMirrorsResponse,
} from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { controlPlanesPerTest } from "../../fixtures/control-plane.js";
import { callOptions as opts, mirrorConfig, type MirrorClient } from "../../fixtures/mirror.js";
import { nextWithin } from "../../fixtures/streams.js";
import { rpcError } from "../../fixtures/tracing.js";

type Stream = AsyncIterator<WatchMirrorsResponse>;

const shadowUrl = "http://127.0.0.1:9";

function watch(mirror: MirrorClient, startRevision = 0): Stream {
  return mirror.watchMirrors({ startRevision: BigInt(startRevision) }, { timeoutMs: 30_000 })[Symbol.asyncIterator]();
}

async function next(stream: Stream, timeoutMs = 5000): Promise<WatchMirrorsResponse["message"]> {
  const result = await nextWithin(stream, timeoutMs);
  if (result.done === true) throw new Error("stream ended");
  return result.value.message;
}

/** Reads until a change at `revision` arrived; returns every change seen (progress skipped). */
async function changesThrough(stream: Stream, revision: number): Promise<MirrorChange[]> {
  const seen: MirrorChange[] = [];
  while (seen.length === 0 || Number(seen[seen.length - 1]!.revision) < revision) {
    const message = await next(stream);
    if (message.case === "change") seen.push(message.value);
    else if (message.case === "snapshot") throw new Error(`unexpected snapshot at ${message.value.revision}`);
  }
  return seen;
}

const rev = (response: { revision: bigint }): number => Number(response.revision);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Reads messages until the stream fails; returns the error. */
async function endOf(stream: Stream): Promise<unknown> {
  for (;;) {
    const error = await nextWithin(stream).then(
      (result) => (result.done === true ? new Error("stream ended without an error") : undefined),
      (e: unknown) => e,
    );
    if (error !== undefined) return error;
  }
}

describe("WatchMirrors", () => {
  const start = controlPlanesPerTest();
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it.each(["grpc", "connect"] as const)("sends a snapshot, then each change in order with its event over %s", async (transport) => {
    const server = await start();
    const mirror = transport === "grpc" ? server.grpc(MirrorService) : server.http(MirrorService);
    const first = await mirror.addMirror({ mirror: mirrorConfig("w-1", shadowUrl) }, opts);
    const stream = watch(mirror);
    const snapshot = await next(stream);
    expect(snapshot.case).toBe("snapshot");
    if (snapshot.case !== "snapshot") return;
    expect(snapshot.value.revision).toBe(first.revision);
    expect(snapshot.value.reset).toBe(false);
    expect(snapshot.value.mirrors).toEqual([first.mirror]);

    const added = await mirror.addMirror({ mirror: mirrorConfig("w-2", shadowUrl, { bufferSize: 7 }) }, opts);
    const disabled = await mirror.disableMirror({ mirrorId: "w-1" }, opts);
    // A no-op changes nothing and is not sent.
    expect((await mirror.disableMirror({ mirrorId: "w-1" }, opts)).revision).toBe(0n);
    const enabled = await mirror.enableMirror({ mirrorId: "w-1" }, opts);
    const removed = await mirror.removeMirror({ mirrorId: "w-2" }, opts);
    const changes = await changesThrough(stream, rev(removed));
    expect(changes.map((c) => [rev(c), c.events.map((e) => [e.type, e.mirror!.mirrorId, e.mirror!.enabled])])).toEqual([
      [rev(added), [[MirrorEventType.ADDED, "w-2", true]]],
      [rev(disabled), [[MirrorEventType.UPDATED, "w-1", false]]],
      [rev(enabled), [[MirrorEventType.UPDATED, "w-1", true]]],
      [rev(removed), [[MirrorEventType.REMOVED, "w-2", true]]],
    ]);
    expect(changes[0]!.events[0]!.mirror).toEqual(added.mirror);
    // REMOVED carries the last config.
    expect(changes[3]!.events[0]!.mirror).toEqual(added.mirror);
    expect(rev(removed)).toBe(rev(first) + 4);
    await stream.return?.();
  });

  it("starts an empty server's watch with an empty snapshot at revision 0", async () => {
    const server = await start();
    const mirror = server.grpc(MirrorService);
    const stream = watch(mirror);
    expect(await next(stream)).toEqual(expect.objectContaining({ case: "snapshot", value: expect.objectContaining({ revision: 0n, mirrors: [] }) }));
    const added = await mirror.addMirror({ mirror: mirrorConfig("w-1", shadowUrl) }, opts);
    expect((await changesThrough(stream, rev(added))).map(rev)).toEqual([1]);
    await stream.return?.();
  });

  it("sends each of many watchers every change of concurrent writers, gap-free", async () => {
    const server = await start({ "max-mirrors": "100" });
    const clients = [server.grpc(MirrorService), server.http(MirrorService)];
    const streams = [watch(clients[0]!), watch(clients[1]!)];
    const base = await Promise.all(streams.map(async (s) => {
      const first = await next(s);
      return first.case === "snapshot" ? rev(first.value) : -1;
    }));
    expect(base).toEqual([0, 0]);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => clients[i % 2]!.addMirror({ mirror: mirrorConfig(`c-${i}`, shadowUrl) }, opts)),
    );
    expect(results.map(rev).sort((a, b) => a - b)).toEqual(range(1, 40));
    for (const stream of streams) {
      const changes = await changesThrough(stream, 40);
      expect(changes.map(rev)).toEqual(range(1, 40));
      const byRevision = new Map(results.map((r) => [rev(r), r.mirror!.mirrorId]));
      expect(changes.map((c) => c.events[0]!.mirror!.mirrorId)).toEqual(range(1, 40).map((r) => byRevision.get(r)));
      await stream.return?.();
    }
  });

  it("resumes after a server restart with exactly the changes after the last revision seen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mirror-watch-"));
    dirs.push(dir);
    const first = await start({}, dir);
    const mirror = first.grpc(MirrorService);
    const stream = watch(mirror);
    expect((await next(stream)).case).toBe("snapshot");
    const revisions: number[] = [];
    for (let i = 0; i < 5; i++) revisions.push(rev(await mirror.addMirror({ mirror: mirrorConfig(`r-${i}`, shadowUrl) }, opts)));
    expect(revisions).toEqual(range(1, 5));
    expect((await changesThrough(stream, 3)).map(rev)).toEqual([1, 2, 3]);
    await first.controlPlane.shutdown();
    const end = await endOf(stream);
    expect(end).toBeInstanceOf(ConnectError);
    expect((end as ConnectError).code).toBe(Code.Unavailable);

    const second = await start({}, dir);
    const mirror2 = second.grpc(MirrorService);
    const later = await mirror2.disableMirror({ mirrorId: "r-0" }, opts);
    expect(rev(later)).toBe(6);
    const resumed = watch(mirror2, 3);
    const changes = await changesThrough(resumed, 6);
    expect(changes.map(rev)).toEqual([4, 5, 6]);
    expect(changes.map((c) => [c.events[0]!.type, c.events[0]!.mirror!.mirrorId])).toEqual([
      [MirrorEventType.ADDED, "r-3"],
      [MirrorEventType.ADDED, "r-4"],
      [MirrorEventType.UPDATED, "r-0"],
    ]);
    await resumed.return?.();
  });

  it("answers a start revision older than the retained history with a reset snapshot", async () => {
    const server = await start({ "history-changes": "2", "history-age": "0", "compact-interval": "0.05" });
    const mirror = server.grpc(MirrorService);
    await mirror.addMirror({ mirror: mirrorConfig("c-0", shadowUrl) }, opts);
    let last = 0;
    for (let i = 0; i < 6; i++) {
      last = rev(await (i % 2 === 0 ? mirror.disableMirror({ mirrorId: "c-0" }, opts) : mirror.enableMirror({ mirrorId: "c-0" }, opts)));
    }
    expect(last).toBe(7);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stream = watch(mirror, 1);
    const message = await next(stream);
    expect(message.case).toBe("snapshot");
    if (message.case !== "snapshot") return;
    expect(message.value.reset).toBe(true);
    expect(rev(message.value)).toBe(last);
    expect(message.value.mirrors.map((m) => [m.mirrorId, m.enabled])).toEqual([["c-0", true]]);
    // Changes after the reset follow it.
    const added = await mirror.addMirror({ mirror: mirrorConfig("c-1", shadowUrl) }, opts);
    expect((await changesThrough(stream, rev(added))).map(rev)).toEqual([rev(added)]);
    // Within the retained history, resuming still works.
    const recent = watch(mirror, last - 1);
    expect((await changesThrough(recent, last)).map(rev)).toEqual([last]);
    await stream.return?.();
    await recent.return?.();
  });

  it("answers a start revision the server never reached with a reset snapshot", async () => {
    const server = await start();
    const mirror = server.grpc(MirrorService);
    const current = rev(await mirror.addMirror({ mirror: mirrorConfig("f-1", shadowUrl) }, opts));
    const stream = watch(mirror, current + 50);
    const message = await next(stream);
    expect(message.case === "snapshot" && message.value).toMatchObject({ reset: true, revision: BigInt(current) });
    await stream.return?.();
  });

  it("sends PROGRESS with the current revision to an idle watcher", async () => {
    const server = await start({ "watch-progress-interval": "0.05" });
    const mirror = server.grpc(MirrorService);
    const current = rev(await mirror.addMirror({ mirror: mirrorConfig("p-1", shadowUrl) }, opts));
    const stream = watch(mirror, current);
    const message = await next(stream, 2000);
    expect(message.case).toBe("progress");
    expect(message.case === "progress" && rev(message.value)).toBe(current);
    await stream.return?.();
  });

  it("lets a watcher with a queue of 1 that does not read fall behind, then catch up gap-free", async () => {
    const server = await start({ "watch-queue-size": "1", "max-mirrors": "100" });
    const mirror = server.grpc(MirrorService);
    const stream = watch(mirror);
    expect((await next(stream)).case).toBe("snapshot");
    for (let i = 0; i < 30; i++) await mirror.addMirror({ mirror: mirrorConfig(`q-${i}`, shadowUrl) }, opts);
    for (let i = 0; i < 30; i++) await mirror.disableMirror({ mirrorId: `q-${i}` }, opts);
    const changes = await changesThrough(stream, 60);
    expect(changes.map(rev)).toEqual(range(1, 60));
    expect(changes.slice(30).every((c) => c.events[0]!.type === MirrorEventType.UPDATED && !c.events[0]!.mirror!.enabled)).toBe(true);
    await stream.return?.();
  });

  it("ends open watches with UNAVAILABLE when the server shuts down", async () => {
    const server = await start();
    const grpc = watch(server.grpc(MirrorService));
    const connect = watch(server.http(MirrorService));
    expect((await next(grpc)).case).toBe("snapshot");
    expect((await next(connect)).case).toBe("snapshot");
    await server.controlPlane.shutdown();
    for (const stream of [grpc, connect]) {
      const end = await endOf(stream);
      expect(end).toBeInstanceOf(ConnectError);
      expect((end as ConnectError).code).toBe(Code.Unavailable);
    }
  });

  it("refuses a negative start_revision naming it", async () => {
    const server = await start();
    const stream = watch(server.grpc(MirrorService), -1);
    const error = await rpcError(nextWithin(stream));
    expect(error).toEqual({ code: Code.InvalidArgument, message: "start_revision must be 0..9007199254740991, got -1" });
  });
});
