import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AlreadyExistsError, LimitExceededError, NotFoundError } from "../../../server/core/errors.js";
import { defaultMirrorLimits, encodeCapturePayload, type MirrorLimits } from "../../../server/core/mirror/model.js";
import { redactedValue } from "../../../server/core/mirror/redaction.js";
import { closeDatabase, openDatabase, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";
import { migrations } from "../../../server/store/migrations.js";
import { maxCapturesPerWrite, MirrorStore, type MirrorEvent } from "../../../server/store/mirror-store.js";
import { RevisionCompactedError, type RevisionedChange } from "../../../server/store/revision-log.js";
import { capturedRequest, mirrorConfig, mirroredRequest, mirrorResult, nowMs } from "../mirror/builders.js";

let db: SqliteDatabase;
let committer: GroupCommitter;
let store: MirrorStore;
let changes: RevisionedChange<MirrorEvent>[];
let clock: number;

function open(path: string, limits: Partial<MirrorLimits> = {}): void {
  db = openDatabase({ path, durability: "full", migrations });
  committer = new GroupCommitter(db);
  clock = nowMs;
  store = new MirrorStore(db, committer, { limits: defaultMirrorLimits(limits), now: () => clock });
  changes = [];
  store.onChange((change) => changes.push(change));
}

function close(): void {
  committer.close();
  closeDatabase(db);
}

/** Buffer rows of a mirror, straight from SQLite. */
function bufferRows(mirrorId: string): number {
  return (db.prepare("SELECT count(*) AS n FROM mirror_buffer WHERE mirror_id = ?").get(mirrorId) as { n: number }).n;
}

/** The request ids a drain of everything hands out. */
async function drainIds(mirrorId: string): Promise<string[]> {
  return (await store.drain(mirrorId, 10_000)).map((request) => request.requestId);
}

/** Adds FULL mirrors of `orders` with these ids. */
async function addFull(...mirrorIds: string[]): Promise<void> {
  for (const mirrorId of mirrorIds) await store.add(mirrorConfig({ mirrorId }));
}

/** Rejection of `promise` (fails when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error,
  );
}

describe("MirrorStore on :memory:", () => {
  beforeEach(() => open(":memory:", { maxMirrors: 3 }));
  afterEach(close);

  it("assigns revisions 1, 2, ... to add, disable, enable and remove and tells listeners after commit", async () => {
    const added = await store.add(mirrorConfig({ mirrorId: "a" }));
    expect(added.revision).toBe(1);
    expect(added.result.enabled).toBe(true);
    const disabled = await store.setEnabled("a", false);
    expect(disabled).toMatchObject({ revision: 2, result: { mirrorId: "a", enabled: false } });
    expect(store.mirror("a").enabled).toBe(false);
    const enabled = await store.setEnabled("a", true);
    expect(enabled).toMatchObject({ revision: 3, result: { enabled: true } });
    const removed = await store.remove("a");
    expect(removed).toMatchObject({ revision: 4, result: { mirrorId: "a", enabled: true } });
    expect(store.mirrors()).toEqual([]);
    expect(store.log.currentRevision).toBe(4);
    expect(changes).toEqual([
      { revision: 1, events: [{ kind: "added", config: mirrorConfig({ mirrorId: "a" }) }] },
      { revision: 2, events: [{ kind: "updated", config: mirrorConfig({ mirrorId: "a", enabled: false }) }] },
      { revision: 3, events: [{ kind: "updated", config: mirrorConfig({ mirrorId: "a" }) }] },
      { revision: 4, events: [{ kind: "removed", config: mirrorConfig({ mirrorId: "a" }) }] },
    ]);
    expect(store.log.readAfter(0, 10)).toEqual(changes);
  });

  it("answers an enable of an enabled mirror with revision 0, no write and no event", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    const same = await store.setEnabled("a", true);
    expect(same).toEqual({ result: store.mirror("a"), revision: 0 });
    await store.setEnabled("a", false);
    expect((await store.setEnabled("a", false)).revision).toBe(0);
    expect(changes.map((c) => c.revision)).toEqual([1, 2]);
    expect(store.log.currentRevision).toBe(2);
  });

  it("notifies listeners in commit order for writes sharing one group commit", async () => {
    const results = await Promise.all([
      store.add(mirrorConfig({ mirrorId: "c" })),
      store.add(mirrorConfig({ mirrorId: "a" })),
      store.setEnabled("c", false),
      store.remove("a"),
      store.add(mirrorConfig({ mirrorId: "b" })),
    ]);
    expect(results.map((r) => r.revision)).toEqual([1, 2, 3, 4, 5]);
    expect(changes.map((c) => [c.revision, c.events[0]!.kind, c.events[0]!.config.mirrorId])).toEqual([
      [1, "added", "c"],
      [2, "added", "a"],
      [3, "updated", "c"],
      [4, "removed", "a"],
      [5, "added", "b"],
    ]);
    expect(store.mirrors().map((m) => m.mirrorId)).toEqual(["b", "c"]);
  });

  it("lists mirrors by mirror_id whatever the insertion order", async () => {
    await addFull("m-2", "m-10", "A");
    expect(store.mirrors().map((m) => m.mirrorId)).toEqual(["A", "m-10", "m-2"]);
  });

  it("rejects a duplicate with ALREADY_EXISTS before the limit, and a mirror past the limit with RESOURCE_EXHAUSTED", async () => {
    await addFull("a");
    const duplicate = await rejection(store.add(mirrorConfig({ mirrorId: "a", shadowEndpoint: "http://other:1" })));
    expect(duplicate).toBeInstanceOf(AlreadyExistsError);
    expect(store.mirror("a").shadowEndpoint).toBe("http://127.0.0.1:9090");
    await addFull("b", "c");
    const full = await rejection(store.add(mirrorConfig({ mirrorId: "d" })));
    expect(full).toBeInstanceOf(LimitExceededError);
    expect((full as Error).message).toMatch(/at most 3 mirrors/);
    expect(await rejection(store.add(mirrorConfig({ mirrorId: "c" })))).toBeInstanceOf(AlreadyExistsError);
    // Failed writes take no revision.
    expect(store.log.currentRevision).toBe(3);
    expect(changes).toHaveLength(3);
    // Removing one makes room again.
    await store.remove("b");
    expect((await store.add(mirrorConfig({ mirrorId: "d" }))).revision).toBe(5);
  });

  it("answers NOT_FOUND for every operation on an unknown mirror", async () => {
    await addFull("a");
    const sync = [
      () => store.mirror("x"),
      () => store.mirrorStats("x"),
      () => store.tally("x"),
      () => store.pendingCount("x"),
      () => store.oldest("x", 1),
    ];
    for (const call of sync) expect(call).toThrow(NotFoundError);
    expect(await rejection(store.remove("x"))).toBeInstanceOf(NotFoundError);
    expect(await rejection(store.setEnabled("x", true))).toBeInstanceOf(NotFoundError);
    expect(await rejection(store.setEnabled("x", false))).toBeInstanceOf(NotFoundError);
    expect(await rejection(store.drain("x", 1))).toBeInstanceOf(NotFoundError);
    expect((await rejection(store.remove("x")) as Error).message).toBe('mirror "x" not found');
    expect(store.log.currentRevision).toBe(1);
  });

  it("queues a capture into every applicable enabled mirror, redacted per mirror, and counts it", async () => {
    await store.add(mirrorConfig({ mirrorId: "b-plain" }));
    await store.add(mirrorConfig({ mirrorId: "a-session", redactHeaders: ["x-session"] }));
    await store.add(mirrorConfig({ mirrorId: "c-off", enabled: false }));
    const request = mirroredRequest({
      headers: { authorization: "Bearer s3cr3t", cookie: "sid=1", "x-session": "abc", "x-tenant": "t1" },
      productionResponse: { ok: true, items: [1, 2] },
      rawBody: new Uint8Array([0, 1, 2, 255]),
    });
    const counts = await store.capture(encodeCapturePayload(request));
    expect(counts).toEqual([
      { mirrorId: "a-session", queued: 1, dropped: 0 },
      { mirrorId: "b-plain", queued: 1, dropped: 0 },
    ]);
    const [a] = await store.drain("a-session", 10);
    const [b] = await store.drain("b-plain", 10);
    expect(a!.headers).toEqual({ authorization: redactedValue, cookie: redactedValue, "x-session": redactedValue, "x-tenant": "t1" });
    expect(b!.headers).toEqual({ authorization: redactedValue, cookie: redactedValue, "x-session": "abc", "x-tenant": "t1" });
    // Everything else round-trips through SQLite, the raw body as bytes.
    const { headers: _, ...rest } = request;
    expect({ ...a!, headers: undefined }).toEqual({ ...rest, headers: undefined });
    expect(b!.rawBody).toBeInstanceOf(Uint8Array);
    expect([...b!.rawBody!]).toEqual([0, 1, 2, 255]);
    expect(store.pendingCount("c-off")).toBe(0);
    expect(store.mirrorStats("c-off")).toMatchObject({ captured: 0, dropped: 0 });
    expect(store.mirrorStats("a-session")).toMatchObject({ captured: 1, pending: 0 });
  });

  it("stores the payload JSON the capture arrives with as its payload, with or without a raw body", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    const requests = [
      mirroredRequest({ requestId: "tree", payload: { cart: { items: [{ sku: "s-1", quantity: 2 }], note: 'a "quoted" é\n' }, empty: {}, list: [] } }),
      mirroredRequest({ requestId: "bytes", payload: {}, rawBody: new Uint8Array([0, 255]) }),
    ];
    for (const request of requests) await store.capture(encodeCapturePayload(request));
    const drained = await store.drain("a", 10);
    expect(drained).toEqual(requests);
    expect(drained[1]!.rawBody).toBeInstanceOf(Uint8Array);
  });

  it("queues nothing for another source service, a disabled mirror, or shadow traffic", async () => {
    await store.add(mirrorConfig({ mirrorId: "orders" }));
    await store.add(mirrorConfig({ mirrorId: "payments", sourceService: "payments" }));
    expect(await store.capture(capturedRequest({ sourceService: "billing" }))).toEqual([]);
    expect(await store.capture(capturedRequest({ headers: { "x-latticeforge-shadow": "orders" } }))).toEqual([]);
    await store.setEnabled("orders", false);
    expect(await store.capture(capturedRequest())).toEqual([]);
    expect(await store.capture(capturedRequest({ sourceService: "payments" }))).toEqual([
      { mirrorId: "payments", queued: 1, dropped: 0 },
    ]);
    expect(store.pendingCount()).toBe(1);
    expect(store.mirrorStats("orders")).toMatchObject({ captured: 0, dropped: 0 });
  });

  it("drops and counts captures past buffer_size without evicting queued ones, and takes more once drained", async () => {
    await store.add(mirrorConfig({ mirrorId: "small", bufferSize: 2 }));
    await store.add(mirrorConfig({ mirrorId: "wide", bufferSize: 10 }));
    const counts = [];
    for (const id of ["r1", "r2", "r3", "r4"]) counts.push(await store.capture(capturedRequest({ requestId: id })));
    expect(counts.map((c) => c.find((m) => m.mirrorId === "small"))).toEqual([
      { mirrorId: "small", queued: 1, dropped: 0 },
      { mirrorId: "small", queued: 1, dropped: 0 },
      { mirrorId: "small", queued: 0, dropped: 1 },
      { mirrorId: "small", queued: 0, dropped: 1 },
    ]);
    expect(store.mirrorStats("small")).toEqual({ captured: 2, dropped: 2, pending: 2, dispatched: 0, failed: 0, diffs: 0 });
    expect(store.mirrorStats("wide")).toMatchObject({ captured: 4, dropped: 0, pending: 4 });
    expect(bufferRows("small")).toBe(2);
    expect(await store.drain("small", 1).then((r) => r.map((x) => x.requestId))).toEqual(["r1"]);
    expect(await store.capture(capturedRequest({ requestId: "r5" }))).toContainEqual({ mirrorId: "small", queued: 1, dropped: 0 });
    expect(await drainIds("small")).toEqual(["r2", "r5"]);
    expect(store.mirrorStats("small")).toMatchObject({ captured: 3, dropped: 2, pending: 0 });
  });

  it("sees the captures of earlier ops in the same group commit when filling a buffer", async () => {
    await store.add(mirrorConfig({ mirrorId: "small", bufferSize: 2 }));
    const counts = await Promise.all(["r1", "r2", "r3"].map((id) => store.capture(capturedRequest({ requestId: id }))));
    expect(counts.map((c) => [c[0]!.queued, c[0]!.dropped])).toEqual([[1, 0], [1, 0], [0, 1]]);
    expect(await drainIds("small")).toEqual(["r1", "r2"]);
  });

  it("shares one write among the captures queued before a commit, each answered with its own counts", async () => {
    await store.add(mirrorConfig({ mirrorId: "small", bufferSize: maxCapturesPerWrite + 1 }));
    const writes = vi.spyOn(committer, "write");
    const ids = Array.from({ length: maxCapturesPerWrite + 2 }, (_, i) => `r${i}`);
    const counts = await Promise.all(ids.map((id) => store.capture(capturedRequest({ requestId: id }))));
    expect(writes).toHaveBeenCalledTimes(2);
    // Each weighs what it may hold in the committer's batch limit.
    expect(writes.mock.calls.map((call) => call[2])).toEqual([maxCapturesPerWrite, maxCapturesPerWrite]);
    expect(counts.map((c) => c[0]!.queued)).toEqual(ids.map((_, i) => (i <= maxCapturesPerWrite ? 1 : 0)));
    expect(counts.at(-1)).toEqual([{ mirrorId: "small", queued: 0, dropped: 1 }]);
    expect(await drainIds("small")).toEqual(ids.slice(0, maxCapturesPerWrite + 1));
  });

  it("stores a capture once per redaction however many mirrors queue it, and frees it with its last buffer row", async () => {
    await addFull("a", "b");
    await store.add(mirrorConfig({ mirrorId: "c", redactHeaders: ["x-session"] }));
    await store.capture(capturedRequest({ requestId: "r1", headers: { "x-session": "s" } }));
    const payloads = (): { refs: number; session: string }[] =>
      (db.prepare("SELECT refs, request FROM mirror_payloads ORDER BY payload_id").all() as { refs: number; request: string }[]).map(
        ({ refs, request }) => ({ refs, session: (JSON.parse(request) as { headers: Record<string, string> }).headers["x-session"]! }),
      );
    expect(payloads()).toEqual([
      { refs: 2, session: "s" },
      { refs: 1, session: redactedValue },
    ]);
    expect(await drainIds("a")).toEqual(["r1"]);
    expect(payloads()).toEqual([
      { refs: 1, session: "s" },
      { refs: 1, session: redactedValue },
    ]);
    await store.recordResults(store.mirror("c"), store.oldest("c", 10), []);
    expect(payloads()).toEqual([{ refs: 1, session: "s" }]);
    await store.remove("b");
    expect(payloads()).toEqual([]);
  });

  it("drains oldest first up to the limit, per mirror, and counts pending per mirror and in total", async () => {
    await addFull("a", "b");
    for (let i = 1; i <= 5; i++) await store.capture(capturedRequest({ requestId: `r${i}` }));
    expect(store.pendingCount("a")).toBe(5);
    expect(store.pendingCount()).toBe(10);
    expect((await store.drain("a", 2)).map((r) => r.requestId)).toEqual(["r1", "r2"]);
    expect(store.pendingCount("a")).toBe(3);
    expect(store.pendingCount("b")).toBe(5);
    expect(store.pendingCount()).toBe(8);
    expect((await store.drain("a", 100)).map((r) => r.requestId)).toEqual(["r3", "r4", "r5"]);
    expect(await store.drain("a", 100)).toEqual([]);
    expect(store.pendingCount("a")).toBe(0);
    expect(bufferRows("a")).toBe(0);
    expect(await drainIds("b")).toEqual(["r1", "r2", "r3", "r4", "r5"]);
  });

  it("keeps what oldest() reads buffered until recordResults removes it and counts the results", async () => {
    await addFull("a");
    for (let i = 1; i <= 3; i++) await store.capture(capturedRequest({ requestId: `r${i}` }));
    const batch = store.oldest("a", 2);
    expect(batch.map((b) => b.request.requestId)).toEqual(["r1", "r2"]);
    expect(batch[0]!.seq).toBeLessThan(batch[1]!.seq);
    expect(store.pendingCount("a")).toBe(3);
    await store.recordResults(store.mirror("a"), batch, [
      mirrorResult({ requestId: "r1", mirrorId: "a", diffDetected: true, diffFields: ["total"] }),
      mirrorResult({ requestId: "r2", mirrorId: "a", success: false, errorKind: "timeout", compared: false }),
    ]);
    expect(store.mirrorStats("a")).toEqual({ captured: 3, dropped: 0, pending: 1, dispatched: 2, failed: 1, diffs: 1 });
    const tally = store.tally("a");
    expect(tally).toMatchObject({ results: 2, compared: 1, diffRequests: 1, failures: { timeout: 1, connection: 0, http_status: 0 } });
    expect(tally.fields.get("total")).toEqual({ candidateDiffs: 1, noiseDiffs: 0, exampleRequestIds: ["r1"] });
    expect(await drainIds("a")).toEqual(["r3"]);
  });

  it("does not count requests twice when a Drain took some of a dispatched batch meanwhile", async () => {
    await addFull("a");
    for (let i = 1; i <= 3; i++) await store.capture(capturedRequest({ requestId: `r${i}` }));
    const batch = store.oldest("a", 3);
    expect((await store.drain("a", 2)).map((r) => r.requestId)).toEqual(["r1", "r2"]);
    expect(store.pendingCount("a")).toBe(1);
    await store.recordResults(store.mirror("a"), batch, batch.map(({ request }) => mirrorResult({ requestId: request.requestId, mirrorId: "a" })));
    expect(store.mirrorStats("a")).toMatchObject({ captured: 3, pending: 0, dispatched: 3 });
    expect(bufferRows("a")).toBe(0);
  });

  it("never removes a request captured after a concurrent Drain emptied the dispatched batch's rows", async () => {
    await addFull("a");
    for (let i = 1; i <= 3; i++) await store.capture(capturedRequest({ requestId: `r${i}` }));
    const batch = store.oldest("a", 3);
    // A Drain takes the whole batch while it is being sent, then a new request arrives.
    expect(await drainIds("a")).toEqual(["r1", "r2", "r3"]);
    await store.capture(capturedRequest({ requestId: "r4" }));
    await store.recordResults(store.mirror("a"), batch, batch.map(({ request }) => mirrorResult({ requestId: request.requestId, mirrorId: "a" })));
    // r4 was never sent: it must still be pending.
    expect(store.pendingCount("a")).toBe(1);
    expect(await drainIds("a")).toEqual(["r4"]);
  });

  it("never hands out a new request under a drained seq across mirrors either", async () => {
    await addFull("a", "b");
    await store.capture(capturedRequest({ requestId: "r1" }));
    const batchA = store.oldest("a", 10);
    await store.drain("a", 10);
    await store.drain("b", 10);
    await store.capture(capturedRequest({ requestId: "r2" }));
    const fresh = store.oldest("a", 10);
    expect(fresh.map((b) => b.seq).some((seq) => batchA.some((old) => old.seq === seq))).toBe(false);
  });

  it("records nothing for a mirror removed while its batch was sent", async () => {
    await addFull("a");
    await store.capture(capturedRequest({ requestId: "r1" }));
    const config = store.mirror("a");
    const batch = store.oldest("a", 1);
    await store.remove("a");
    await expect(store.recordResults(config, batch, [mirrorResult({ requestId: "r1", mirrorId: "a" })])).resolves.toBeUndefined();
    expect(store.mirrors()).toEqual([]);
    expect((db.prepare("SELECT count(*) AS n FROM mirrors").get() as { n: number }).n).toBe(0);
  });

  it("records nothing into a mirror re-added under the same id while the old one's batch was sent", async () => {
    await addFull("a");
    await store.capture(capturedRequest({ requestId: "r1" }));
    const config = store.mirror("a");
    const batch = store.oldest("a", 1);
    await store.remove("a");
    await store.add(mirrorConfig({ mirrorId: "a", createdAtMs: nowMs + 1 }));
    await store.capture(capturedRequest({ requestId: "r2" }));
    await store.recordResults(config, batch, [mirrorResult({ requestId: "r1", mirrorId: "a", diffDetected: true, diffFields: ["x"] })]);
    expect(store.mirrorStats("a")).toEqual({ captured: 1, dropped: 0, pending: 1, dispatched: 0, failed: 0, diffs: 0 });
    expect(store.tally("a").results).toBe(0);
    expect(await drainIds("a")).toEqual(["r2"]);
  });

  it("removes a mirror with its buffer, counters and tally; re-adding it starts from zero", async () => {
    await addFull("a", "b");
    await store.capture(capturedRequest({ requestId: "r1" }));
    await store.capture(capturedRequest({ requestId: "r2" }));
    const batch = store.oldest("a", 1);
    await store.recordResults(store.mirror("a"), batch, [mirrorResult({ requestId: "r1", mirrorId: "a", diffDetected: true, diffFields: ["x"] })]);
    await store.remove("a");
    expect(bufferRows("a")).toBe(0);
    expect(store.pendingCount()).toBe(2);
    await store.add(mirrorConfig({ mirrorId: "a" }));
    expect(store.mirrorStats("a")).toEqual({ captured: 0, dropped: 0, pending: 0, dispatched: 0, failed: 0, diffs: 0 });
    expect(store.tally("a").results).toBe(0);
    expect(store.tally("a").fields.size).toBe(0);
    expect(await drainIds("b")).toEqual(["r1", "r2"]);
  });

  it("compacts the configuration history so a resume before it is refused", async () => {
    await addFull("a");
    for (let i = 0; i < 4; i++) await store.setEnabled("a", i % 2 === 1);
    expect(store.log.currentRevision).toBe(5);
    clock += 10_000;
    expect(await store.compact(2, 1000)).toBe(3);
    expect(store.log.oldestAvailableRevision).toBe(4);
    expect(() => store.log.readAfter(1, 10)).toThrow(RevisionCompactedError);
    expect(store.log.readAfter(3, 10).map((c) => c.revision)).toEqual([4, 5]);
    expect(await store.compact(2, 1000)).toBe(0);
  });
});

describe("MirrorStore after a failed write", () => {
  beforeEach(() => open(":memory:", { maxMirrors: 5 }));
  afterEach(close);

  /** Every mirror's counters and pending, from memory and from SQLite. */
  function memoryAndDatabase(): { memory: unknown; database: unknown } {
    const memory = store.mirrors().map((m) => {
      const { captured, dropped, pending } = store.mirrorStats(m.mirrorId);
      return { id: m.mirrorId, enabled: m.enabled, captured, dropped, pending };
    });
    const database = (
      db
        .prepare(
          `SELECT m.mirror_id AS id, m.config, m.captured, m.dropped,
             (SELECT count(*) FROM mirror_buffer b WHERE b.mirror_id = m.mirror_id) AS pending
           FROM mirrors m ORDER BY m.mirror_id`,
        )
        .all() as { id: string; config: string; captured: number; dropped: number; pending: number }[]
    ).map(({ config, ...row }) => ({ ...row, enabled: (JSON.parse(config) as { enabled: boolean }).enabled }));
    return { memory, database: database.map(({ id, enabled, captured, dropped, pending }) => ({ id, enabled, captured, dropped, pending })) };
  }

  function expectConsistent(): void {
    const { memory, database } = memoryAndDatabase();
    expect(memory).toEqual(database);
    expect(store.log.currentRevision).toBe(
      (db.prepare("SELECT current FROM revision_streams WHERE stream = 'mirror_config'").get() as { current: number }).current,
    );
  }

  it("leaves no mirror's counters changed when the capture fails in a later mirror's insert", async () => {
    await addFull("a", "b", "c");
    db.exec(`CREATE TRIGGER fail_b BEFORE INSERT ON mirror_buffer WHEN NEW.mirror_id = 'b'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END`);
    expect(((await rejection(store.capture(capturedRequest({ requestId: "r1" })))) as Error).message).toBe("injected failure");
    expect(store.mirrorStats("a")).toMatchObject({ captured: 0, pending: 0 });
    expect(store.pendingCount()).toBe(0);
    expectConsistent();
    db.exec("DROP TRIGGER fail_b");
    expect((await store.capture(capturedRequest({ requestId: "r2" }))).map((c) => c.queued)).toEqual([1, 1, 1]);
    expect(await drainIds("a")).toEqual(["r2"]);
    expectConsistent();
  });

  it("fails the captures sharing a write with a failing one and commits the batch's other writes", async () => {
    await addFull("a", "b");
    db.exec(`CREATE TRIGGER fail_r2 BEFORE INSERT ON mirror_payloads WHEN NEW.request LIKE '%"r2"%'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END`);
    await store.capture(capturedRequest({ requestId: "r0" }));
    const settled = await Promise.allSettled([
      store.capture(capturedRequest({ requestId: "r1" })),
      store.add(mirrorConfig({ mirrorId: "c" })),
      store.capture(capturedRequest({ requestId: "r2" })),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["rejected", "fulfilled", "rejected"]);
    expect(store.mirror("c").mirrorId).toBe("c");
    expectConsistent();
    db.exec("DROP TRIGGER fail_r2");
    expect((await store.capture(capturedRequest({ requestId: "r3" }))).map((c) => c.queued)).toEqual([1, 1, 1]);
    expect(await drainIds("a")).toEqual(["r0", "r3"]);
    expect(await drainIds("c")).toEqual(["r3"]);
    expect(store.mirrorStats("a")).toMatchObject({ captured: 2 });
    expectConsistent();
  });

  it("keeps memory, revision and listeners unchanged when a config change cannot be logged", async () => {
    await addFull("a");
    db.exec(`CREATE TRIGGER fail_log BEFORE INSERT ON revision_log_mirror_config
             BEGIN SELECT RAISE(ABORT, 'log full'); END`);
    expect(await rejection(store.add(mirrorConfig({ mirrorId: "b" })))).toMatchObject({ message: "log full" });
    expect(() => store.mirror("b")).toThrow(NotFoundError);
    expect(await rejection(store.setEnabled("a", false))).toMatchObject({ message: "log full" });
    expect(store.mirror("a").enabled).toBe(true);
    expect(await rejection(store.remove("a"))).toMatchObject({ message: "log full" });
    expect(store.mirror("a").mirrorId).toBe("a");
    expect(store.log.currentRevision).toBe(1);
    expect(changes.map((c) => c.revision)).toEqual([1]);
    expectConsistent();
    db.exec("DROP TRIGGER fail_log");
    expect((await store.add(mirrorConfig({ mirrorId: "b" }))).revision).toBe(2);
    expect(changes.map((c) => c.revision)).toEqual([1, 2]);
  });

  it("reloads memory when a failure rolls back the whole batch", async () => {
    await addFull("a");
    await store.capture(capturedRequest({ requestId: "r0" }));
    db.exec(`CREATE TRIGGER fail_all BEFORE INSERT ON mirror_payloads WHEN NEW.request LIKE '%"boom"%'
             BEGIN SELECT RAISE(ROLLBACK, 'batch lost'); END`);
    const settled = await Promise.allSettled([
      store.add(mirrorConfig({ mirrorId: "b" })),
      store.capture(capturedRequest({ requestId: "r1" })),
      store.setEnabled("a", false),
      store.capture(capturedRequest({ requestId: "boom" })),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected", "rejected", "rejected"]);
    expect(store.mirrors().map((m) => [m.mirrorId, m.enabled])).toEqual([["a", true]]);
    expect(store.mirrorStats("a")).toMatchObject({ captured: 1, pending: 1 });
    expect(store.log.currentRevision).toBe(1);
    expect(changes.map((c) => c.revision)).toEqual([1]);
    expectConsistent();
    db.exec("DROP TRIGGER fail_all");
    expect((await store.add(mirrorConfig({ mirrorId: "b" }))).revision).toBe(2);
    expect(await drainIds("a")).toEqual(["r0"]);
  });
});

describe("MirrorStore on a file", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "mirror-store-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps configs, buffers, counters, tallies and the revision across a reopen", async () => {
    const path = join(dir, "db", "lf.sqlite");
    open(path);
    await store.add(mirrorConfig({ mirrorId: "a", bufferSize: 3, redactHeaders: ["x-session"] }));
    await store.add(mirrorConfig({ mirrorId: "b", enabled: false }));
    for (let i = 1; i <= 5; i++) {
      await store.capture(capturedRequest({ requestId: `r${i}`, headers: { "x-session": "s", accept: "*/*" }, rawBody: new Uint8Array([i]) }));
    }
    const batch = store.oldest("a", 1);
    await store.recordResults(store.mirror("a"), batch, [
      mirrorResult({ requestId: "r1", mirrorId: "a", diffDetected: true, diffFields: ["items[*].price"], noiseFields: ["ts"], noiseSampled: true }),
    ]);
    const statsBefore = store.mirrorStats("a");
    const tallyBefore = store.tally("a");
    expect(statsBefore).toEqual({ captured: 3, dropped: 2, pending: 2, dispatched: 1, failed: 0, diffs: 1 });
    close();

    open(path);
    try {
      expect(store.mirrors().map((m) => [m.mirrorId, m.enabled])).toEqual([["a", true], ["b", false]]);
      expect(store.mirror("a")).toEqual(mirrorConfig({ mirrorId: "a", bufferSize: 3, redactHeaders: ["x-session"] }));
      expect(store.mirrorStats("a")).toEqual(statsBefore);
      expect(store.tally("a")).toEqual(tallyBefore);
      expect(store.tally("a").fields.get("ts")).toEqual({ candidateDiffs: 0, noiseDiffs: 1, exampleRequestIds: [] });
      expect(store.log.currentRevision).toBe(2);
      expect(store.log.readAfter(0, 10).map((c) => c.events[0]!.kind)).toEqual(["added", "added"]);
      // The buffer still enforces its size with the reloaded pending count.
      expect(await store.capture(capturedRequest({ requestId: "r6" }))).toEqual([{ mirrorId: "a", queued: 1, dropped: 0 }]);
      expect(await store.capture(capturedRequest({ requestId: "r7" }))).toEqual([{ mirrorId: "a", queued: 0, dropped: 1 }]);
      const drained = await store.drain("a", 10);
      expect(drained.map((r) => r.requestId)).toEqual(["r2", "r3", "r6"]);
      expect(drained[0]!.headers).toEqual({ "x-session": redactedValue, accept: "*/*" });
      expect([...drained[0]!.rawBody!]).toEqual([2]);
      expect((await store.add(mirrorConfig({ mirrorId: "c" }))).revision).toBe(3);
    } finally {
      close();
    }
  });

  it("upgrades a version-5 database: each buffer row becomes a payload of its own, in the same order", async () => {
    const path = join(dir, "old.sqlite");
    const old = openDatabase({ path, durability: "full", migrations: migrations.filter((m) => m.version <= 5) });
    const config = (mirrorId: string): string => JSON.stringify(mirrorConfig({ mirrorId, bufferSize: 5 }));
    old.prepare("INSERT INTO mirrors (mirror_id, config, captured) VALUES (?, ?, ?)").run("a", config("a"), 2);
    old.prepare("INSERT INTO mirrors (mirror_id, config, captured) VALUES (?, ?, ?)").run("b", config("b"), 1);
    const insert = old.prepare("INSERT INTO mirror_buffer (seq, mirror_id, request) VALUES (?, ?, ?)");
    insert.run(7, "a", JSON.stringify(mirroredRequest({ requestId: "old-1" })));
    insert.run(8, "b", JSON.stringify(mirroredRequest({ requestId: "old-1" })));
    insert.run(9, "a", JSON.stringify(mirroredRequest({ requestId: "old-2" })));
    closeDatabase(old);

    open(path);
    try {
      expect(store.mirrorStats("a")).toMatchObject({ captured: 2, pending: 2 });
      expect(await store.capture(capturedRequest({ requestId: "new-1" }))).toEqual([
        { mirrorId: "a", queued: 1, dropped: 0 },
        { mirrorId: "b", queued: 1, dropped: 0 },
      ]);
      expect(await drainIds("a")).toEqual(["old-1", "old-2", "new-1"]);
      expect(await drainIds("b")).toEqual(["old-1", "new-1"]);
      expect(db.prepare("SELECT count(*) FROM mirror_payloads").pluck().get()).toBe(0);
    } finally {
      close();
    }
  });
});
