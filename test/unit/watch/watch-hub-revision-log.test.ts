import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { closeDatabase, openDatabase, type Migration, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";
import { RevisionLog, revisionLogSchema, type RevisionLogCodec } from "../../../server/store/revision-log.js";
import { WatchHub, type WatchHubOptions, type WatchMessage } from "../../../server/watch/watch-hub.js";
import { changeRevision, expectEnd, nextMessage, nextMessages, range, type TestEvent } from "./watch-helpers.js";

const migrations: Migration[] = [
  {
    version: 1,
    description: "the test stream's revision log, and children whose foreign key is checked at COMMIT",
    up: (db) => {
      db.exec(revisionLogSchema("test_stream"));
      db.exec(`
        CREATE TABLE parents (id INTEGER PRIMARY KEY);
        CREATE TABLE children (id INTEGER PRIMARY KEY,
          parent_id INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
      `);
    },
  },
];

const codec: RevisionLogCodec<TestEvent> = {
  encode: (event) => new TextEncoder().encode(JSON.stringify(event)),
  decode: (bytes) => JSON.parse(new TextDecoder().decode(bytes)) as TestEvent,
};

/** What a snapshot shows: the revision the state was at, and events seen per service. */
interface Snapshot {
  readonly applied: number;
  readonly services: Record<string, number>;
}

type Message = WatchMessage<TestEvent, Snapshot>;

/**
 * A store in miniature, wired like the registry's: a write appends its
 * events under the committer, and its onCommitted applies them to memory and
 * notifies the hub.
 */
class MiniStore {
  readonly committer: GroupCommitter;
  readonly log: RevisionLog<TestEvent>;
  readonly hub: WatchHub<TestEvent>;
  private applied = 0;
  private readonly services = new Map<string, number>();
  now = 1000;

  constructor(
    readonly db: SqliteDatabase,
    options: WatchHubOptions,
  ) {
    this.committer = new GroupCommitter(db, { maxBatch: 64 });
    this.log = new RevisionLog(db, "test_stream", codec);
    this.committer.onRollback(() => this.log.reload());
    this.hub = new WatchHub(this.log, { progressIntervalMs: 0, ...options });
    // A reopened store starts from what is durable.
    this.applied = this.log.currentRevision;
  }

  write(...events: TestEvent[]): Promise<number> {
    const all = events.length > 0 ? events : [{ service: "a", label: "a" }];
    return this.committer.write(
      () => ({ revision: this.log.append(all, this.now), events: all }),
      (change) => {
        this.applied = change.revision;
        for (const event of change.events) this.services.set(event.service, (this.services.get(event.service) ?? 0) + 1);
        this.hub.notify(change);
      },
    ).then((change) => change.revision);
  }

  writeMany(count: number): Promise<number[]> {
    return Promise.all(Array.from({ length: count }, () => this.write()));
  }

  compact(keepChanges: number): Promise<number> {
    return this.committer.write(() => this.log.compact({ keepChanges, keepAgeMs: 0 }, this.now + 1));
  }

  watch(startRevision = 0, matches: (event: TestEvent) => boolean = () => true) {
    const controller = new AbortController();
    const iterable = this.hub.watch<Snapshot>({
      startRevision,
      matches,
      snapshot: () => ({ applied: this.applied, services: Object.fromEntries(this.services) }),
      signal: controller.signal,
    });
    return Object.assign(iterable[Symbol.asyncIterator](), { controller });
  }

  close(): void {
    this.hub.close();
    this.committer.close();
  }
}

let dir: string;
let dbPath: string;
const stores: MiniStore[] = [];

function openStore(options: WatchHubOptions = {}, path = dbPath): MiniStore {
  const store = new MiniStore(openDatabase({ path, durability: "normal", migrations }), options);
  stores.push(store);
  return store;
}

function closeStore(store: MiniStore): void {
  store.close();
  closeDatabase(store.db);
  stores.splice(stores.indexOf(store), 1);
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lf-watch-hub-"));
  dbPath = join(dir, "db.sqlite");
});
afterEach(() => {
  for (const store of stores.splice(0)) {
    store.close();
    closeDatabase(store.db);
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("WatchHub over RevisionLog and GroupCommitter", () => {
  it("gives watchers started between batches a consistent snapshot, then every later change once", async () => {
    const store = openStore();
    const watches: { w: ReturnType<MiniStore["watch"]>; snapshot: Promise<Message> }[] = [];
    const writes: Promise<number[]>[] = [];
    for (let round = 0; round < 5; round++) {
      writes.push(store.writeMany(40));
      const w = store.watch();
      watches.push({ w, snapshot: nextMessage(w) });
      await turn();
    }
    expect((await Promise.all(writes)).flat()).toEqual(range(1, 200));
    for (const { w, snapshot } of watches) {
      const message = await snapshot;
      if (message.kind !== "snapshot") throw new Error(`expected a snapshot, got ${message.kind}`);
      expect(message.snapshot.applied).toBe(message.revision);
      expect(message.snapshot.services).toEqual(message.revision === 0 ? {} : { a: message.revision });
      expect((await nextMessages(w, 200 - message.revision)).map(changeRevision)).toEqual(
        range(message.revision + 1, 200),
      );
    }
    expect(store.hub.unsyncedCount).toBe(0);
  });

  it("resumes from N after a restart on the same database with exactly the changes after N", async () => {
    const first = openStore();
    await first.write({ service: "a", label: "one" }, { service: "b", label: "two" });
    await first.writeMany(19);
    closeStore(first);

    const second = openStore({ catchUpBatch: 4 });
    expect(second.log.currentRevision).toBe(20);
    const w = second.watch(7);
    expect((await nextMessages(w, 13)).map(changeRevision)).toEqual(range(8, 20));
    expect(second.hub.unsyncedCount).toBe(0);
    await second.write();
    expect((await nextMessages(w, 1)).map(changeRevision)).toEqual([21]);
    expect(second.log.readAfter(0, 1)).toEqual([
      {
        revision: 1,
        events: [
          { service: "a", label: "one" },
          { service: "b", label: "two" },
        ],
      },
    ]);
  });

  it.each([
    { start: 5, reset: true },
    { start: 6, reset: true },
    { start: 7, reset: false },
    { start: 9, reset: false },
  ])("answers a resume from $start after compaction to 3 changes of 10 with reset=$reset", async ({ start, reset }) => {
    const store = openStore();
    await store.writeMany(10);
    expect(await store.compact(3)).toBe(7);
    expect(store.log.oldestAvailableRevision).toBe(8);
    const w = store.watch(start);
    if (reset) {
      expect(await nextMessage(w)).toEqual({
        kind: "snapshot",
        revision: 10,
        snapshot: { applied: 10, services: { a: 10 } },
        reset: true,
      });
    } else {
      expect((await nextMessages(w, 10 - start)).map(changeRevision)).toEqual(range(start + 1, 10));
    }
    await store.write();
    expect((await nextMessages(w, 1)).map(changeRevision)).toEqual([11]);
  });

  it("delivers only matching changes, read back from the log as from notify", async () => {
    const store = openStore({ catchUpBatch: 3 });
    const isB = (event: TestEvent) => event.service === "b";
    const live = store.watch(0, isB);
    await nextMessage(live);
    for (const service of ["a", "b", "a", "a", "b", "b", "a"]) await store.write({ service, label: service });
    const resumed = store.watch(1, isB);
    expect((await nextMessages(live, 3)).map(changeRevision)).toEqual([2, 5, 6]);
    expect((await nextMessages(resumed, 3)).map(changeRevision)).toEqual([2, 5, 6]);
  });

  it("lets a queueSize=1 watcher that stopped reading fall back to the log while a fast one keeps up", async () => {
    const store = openStore({ queueSize: 1, catchUpBatch: 8 });
    const fast = store.watch();
    const slow = store.watch();
    await nextMessage(fast);
    await nextMessage(slow);
    for (let i = 1; i <= 60; i++) {
      await store.write();
      expect(changeRevision(await nextMessage(fast))).toBe(i);
    }
    expect(store.hub.unsyncedCount).toBe(1);
    expect((await nextMessages(slow, 60)).map(changeRevision)).toEqual(range(1, 60));
    expect(store.hub.unsyncedCount).toBe(0);
    await store.write();
    expect(changeRevision(await nextMessage(slow))).toBe(61);
    expect(changeRevision(await nextMessage(fast))).toBe(61);
  });

  it("keeps every change exactly once, in order, for readers of different speeds under concurrent batched writers", async () => {
    const store = openStore({ queueSize: 4, catchUpBatch: 5 });
    const readers = [0, 1, 3].map(async (everyTurns) => {
      const w = store.watch();
      const snapshot = await nextMessage(w);
      const from = snapshot.kind === "snapshot" ? snapshot.revision : -1;
      const seen: number[] = [];
      while (from + seen.length < 600) {
        seen.push(changeRevision(await nextMessage(w)));
        for (let t = 0; t < everyTurns; t++) await turn();
      }
      return { from, seen };
    });
    const writers = Array.from({ length: 6 }, async () => {
      for (let burst = 0; burst < 10; burst++) {
        await store.writeMany(10);
        await turn();
      }
    });
    await Promise.all(writers);
    for (const { from, seen } of await Promise.all(readers)) expect(seen).toEqual(range(from + 1, 600));
    expect(store.log.currentRevision).toBe(600);
  });

  it("resets a catching-up watcher whose position was compacted", async () => {
    const store = openStore({ queueSize: 1, catchUpBatch: 4 });
    const w = store.watch();
    await nextMessage(w);
    await store.writeMany(12);
    expect(store.hub.unsyncedCount).toBe(1);
    expect((await nextMessages(w, 4)).map(changeRevision)).toEqual([1, 2, 3, 4]);
    await store.compact(2);
    expect(await nextMessage(w)).toEqual({
      kind: "snapshot",
      revision: 12,
      snapshot: { applied: 12, services: { a: 12 } },
      reset: true,
    });
    await store.write();
    expect(changeRevision(await nextMessage(w))).toBe(13);
  });

  it("never notifies a rolled-back batch; the next change reuses its revision", async () => {
    const store = openStore();
    const w = store.watch();
    await nextMessage(w);
    await store.write({ service: "a", label: "kept" });
    const orphan = store.committer.write(() => {
      store.log.append([{ service: "a", label: "lost" }], store.now);
      store.db.prepare("INSERT INTO children (parent_id) VALUES (42)").run();
    });
    await expect(orphan).rejects.toThrow(/FOREIGN KEY/);
    await store.write({ service: "a", label: "after" });
    const messages = await nextMessages(w, 2);
    expect(messages.map((m) => (m.kind === "change" ? [m.change.revision, m.change.events[0]?.label] : []))).toEqual([
      [1, "kept"],
      [2, "after"],
    ]);
  });

  it("ends every watch on close()", async () => {
    const store = openStore({ queueSize: 1 });
    const watches = [store.watch(), store.watch(), store.watch()];
    for (const w of watches) await nextMessage(w);
    await store.writeMany(3);
    store.hub.close();
    for (const w of watches) await expectEnd(w);
    expect(store.hub.watcherCount).toBe(0);
  });
});
