import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { closeDatabase, openDatabase, type Migration, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter, StoreSyncFailedError, type CommitStats } from "../../../server/store/group-commit.js";
import { WalSync, type CommitSync } from "../../../server/store/wal-sync.js";
import { within } from "../../fixtures/streams.js";

const schema: Migration[] = [
  { version: 1, description: "items", up: (db) => db.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)") },
];

const insert = (name: string) => (db: SqliteDatabase) => Number(db.prepare("INSERT INTO items (name) VALUES (?)").run(name).lastInsertRowid);
const names = (db: SqliteDatabase) => db.prepare("SELECT name FROM items ORDER BY id").pluck().all() as string[];
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A CommitSync whose fsyncs and checkpoints finish only when the test says so. */
class ManualSync implements CommitSync {
  readonly calls: string[] = [];
  private pending: { resolve(): void; reject(error: Error): void }[] = [];
  released = false;

  sync(): Promise<void> {
    this.calls.push("sync");
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }
  checkpoint(): Promise<void> {
    this.calls.push("checkpoint");
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }
  syncNow(): void {
    this.calls.push("syncNow");
  }
  release(): void {
    this.released = true;
  }
  get inFlight(): number {
    return this.pending.length;
  }
  /** Completes the oldest fsync or checkpoint. */
  async finish(error?: Error): Promise<void> {
    const next = this.pending.shift();
    if (next === undefined) throw new Error("nothing in flight");
    if (error === undefined) next.resolve();
    else next.reject(error);
    await turn();
  }
}

let dir: string;
let db: SqliteDatabase;
let batches: CommitStats[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lf-store-sync-"));
  db = openDatabase({ path: join(dir, "db.sqlite"), durability: "full", migrations: schema });
  batches = [];
});
afterEach(() => {
  closeDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

function committer(sync: CommitSync, checkpointEveryBatches = 1000): GroupCommitter {
  return new GroupCommitter(db, { commitSync: sync, checkpointEveryBatches, onCommit: (stats) => batches.push(stats) });
}

/** Which of `promises` settled, without waiting for the others. */
async function settled(promises: Promise<unknown>[]): Promise<boolean[]> {
  const states = promises.map(() => false);
  promises.forEach((promise, i) => promise.then(() => (states[i] = true), () => (states[i] = true)));
  await turn();
  return states;
}

describe("GroupCommitter with off-loop durability", () => {
  it("answers a committed write only after the fsync that followed its COMMIT", async () => {
    const sync = new ManualSync();
    const gc = committer(sync);
    const write = gc.write(insert("a"));
    await turn();
    expect(names(db)).toEqual(["a"]); // committed and visible
    expect(sync.calls).toEqual(["sync"]);
    expect(await settled([write])).toEqual([false]); // not yet durable
    await sync.finish();
    await expect(write).resolves.toBe(1);
    gc.close();
  });

  it("runs onCommitted right after COMMIT, before the fsync, so watchers see commit order", async () => {
    const sync = new ManualSync();
    const gc = committer(sync);
    const seen: string[] = [];
    const write = gc.write(insert("a"), () => seen.push("committed"));
    await turn();
    expect(seen).toEqual(["committed"]);
    await sync.finish();
    await write;
    gc.close();
  });

  it("gathers the writes that arrive during an fsync into the next batch, one fsync in flight at a time", async () => {
    const sync = new ManualSync();
    const gc = committer(sync);
    const first = gc.write(insert("first"));
    await turn();
    const during = Array.from({ length: 50 }, (_, i) => gc.write(insert(`during-${i}`)));
    await turn();
    await turn();
    expect(batches.map((b) => b.batchSize)).toEqual([1]); // nothing committed while the fsync runs
    expect(sync.inFlight).toBe(1);
    await sync.finish();
    await first;
    await turn();
    expect(batches.map((b) => b.batchSize)).toEqual([1, 50]);
    expect(await settled(during)).toEqual(during.map(() => false));
    await sync.finish();
    await Promise.all(during);
    expect(names(db)).toHaveLength(51);
    gc.close();
  });

  it("after a failed fsync, rejects the writes it covered and every later write", async () => {
    const sync = new ManualSync();
    const gc = committer(sync);
    const outcome = gc.write(insert("a")).then(
      () => undefined,
      (error: unknown) => error,
    );
    await turn();
    await sync.finish(new Error("EIO: i/o error, fsync"));
    const error = await outcome;
    expect(error).toBeInstanceOf(StoreSyncFailedError);
    expect((error as Error).message).toMatch(/could not be synced to disk \(EIO: i\/o error, fsync\)/);
    expect(gc.failure).toBeInstanceOf(StoreSyncFailedError);
    await expect(gc.write(insert("b"))).rejects.toBeInstanceOf(StoreSyncFailedError);
    gc.close();
  });

  it("rejects a stepped write whose steps outlast a failed checkpoint, committing none of it", async () => {
    const sync = new ManualSync();
    const gc = committer(sync, 1);
    const first = gc.write(insert("a"));
    await turn();
    await sync.finish(); // "a" is durable; a checkpoint is due and starts
    await first;
    expect(sync.calls).toEqual(["sync", "checkpoint"]);
    const stepped = gc
      .writeInSteps(function* (conn) {
        insert("s1")(conn);
        yield;
        yield;
        yield;
        insert("s2")(conn);
        return 2;
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    await turn();
    expect(db.inTransaction).toBe(true); // between two steps
    await sync.finish(new Error("EIO: i/o error, checkpoint"));
    expect(await stepped).toBeInstanceOf(StoreSyncFailedError);
    expect(db.inTransaction).toBe(false);
    expect(names(db)).toEqual(["a"]);
    gc.close();
  });

  it("starts a checkpoint when due and goes on writing while it runs, one checkpoint at a time", async () => {
    const sync = new ManualSync();
    const gc = committer(sync, 2);
    const writes = [gc.write(insert("a"))];
    await turn();
    await sync.finish(); // batch 1 durable
    writes.push(gc.write(insert("b")));
    await turn();
    await sync.finish(); // batch 2 durable: a checkpoint is due
    expect(sync.calls).toEqual(["sync", "sync", "checkpoint"]);
    writes.push(gc.write(insert("c")));
    await turn();
    expect(names(db)).toEqual(["a", "b", "c"]); // not held back by the checkpoint
    await sync.finish(); // the checkpoint
    await sync.finish(); // batch 3 durable
    writes.push(gc.write(insert("d")));
    await turn();
    await sync.finish(); // batch 4 durable: due again, and the first one is done
    expect(sync.calls.filter((call) => call === "checkpoint")).toHaveLength(2);
    await sync.finish();
    await Promise.all(writes);
    gc.close();
  });

  it("on close, commits the queue, syncs what waits at once and hands syncing back", async () => {
    const sync = new ManualSync();
    const gc = committer(sync);
    const first = gc.write(insert("a"));
    await turn(); // committed; its fsync is in flight
    const queued = gc.write(insert("b"));
    gc.close();
    expect(names(db)).toEqual(["a", "b"]);
    expect(sync.calls).toEqual(["sync", "syncNow"]);
    expect(sync.released).toBe(true);
    await expect(within(queued, 1000)).resolves.toBe(2);
    await sync.finish();
    await expect(first).resolves.toBe(1);
  });
});

describe("WalSync on a real file", () => {
  it("on close, answers the writes of an fsync still in flight (its own sync covers them); that fsync ending late changes nothing", async () => {
    const sync = new ManualSync();
    const gc = committer(sync);
    const inFlight = gc.write(insert("a"));
    await turn(); // committed; its fsync is in flight
    gc.close();
    expect(sync.calls).toEqual(["sync", "syncNow"]);
    await expect(within(inFlight, 1000)).resolves.toBe(1);
    await sync.finish(new Error("EBADF: bad file descriptor, fsync"));
    expect(gc.failure).toBeUndefined();
  });

  it("keeps the WAL descriptor open until an fsync in flight when released has ended", async () => {
    for (let round = 0; round < 20; round++) {
      const gc = new GroupCommitter(db);
      const written = gc.write(insert(`r${round}`));
      // The fsync starts on the libuv pool right after COMMIT; close releases at once.
      await turn();
      gc.close();
      await expect(written).resolves.toBeGreaterThan(0);
      expect(gc.failure).toBeUndefined();
    }
    const sync = WalSync.attach(db)!;
    db.prepare("INSERT INTO items (name) VALUES ('direct')").run();
    const pending = Array.from({ length: 5 }, () => sync.sync());
    sync.release();
    await expect(Promise.all(pending)).resolves.toHaveLength(5);
  });

  it("takes over syncing from SQLite (synchronous OFF, no automatic checkpoints) and gives it back on close", () => {
    const gc = new GroupCommitter(db);
    expect(db.pragma("synchronous", { simple: true })).toBe(0);
    expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    gc.close();
    expect(db.pragma("synchronous", { simple: true })).toBe(2);
    expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
  });

  it("leaves durability normal and :memory: databases to SQLite", () => {
    const normal = openDatabase({ path: join(dir, "normal.sqlite"), durability: "normal", migrations: schema });
    const memory = openDatabase({ path: ":memory:", durability: "full", migrations: schema });
    try {
      for (const other of [normal, memory]) {
        const before = other.pragma("synchronous", { simple: true });
        new GroupCommitter(other).close();
        expect(other.pragma("synchronous", { simple: true })).toBe(before);
      }
    } finally {
      closeDatabase(normal);
      closeDatabase(memory);
    }
  });

  it("acknowledges writes after real fsyncs, checkpoints into the database file in the worker, and keeps every write across a reopen", async () => {
    const real = WalSync.attach(db)!;
    let acknowledged = 0;
    /** Writes acknowledged when each finished checkpoint started: it backfilled at least those. */
    const backfilled: number[] = [];
    let checkpointing: Promise<void> = Promise.resolve();
    const spy: CommitSync = {
      sync: () => real.sync(),
      syncNow: () => real.syncNow(),
      release: () => real.release(),
      checkpoint: () => {
        const covered = acknowledged;
        checkpointing = real.checkpoint().then(() => void backfilled.push(covered));
        return checkpointing;
      },
    };
    const gc = new GroupCommitter(db, { commitSync: spy, checkpointEveryBatches: 3 });
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => gc.write(insert(`r${round}-${i}`)).then(() => void acknowledged++)),
      );
    }
    await within(checkpointing, 5000);
    expect(backfilled.length).toBeGreaterThanOrEqual(1);
    // The main connection never checkpoints (wal_autocheckpoint 0), so the
    // rows in the database file without its WAL are the worker's doing.
    const copy = join(dir, "copy");
    mkdirSync(copy);
    copyFileSync(join(dir, "db.sqlite"), join(copy, "db.sqlite"));
    const fileOnly = new Database(join(copy, "db.sqlite"));
    try {
      expect(names(fileOnly).length).toBeGreaterThanOrEqual(Math.max(...backfilled));
    } finally {
      fileOnly.close();
    }
    gc.close();
    closeDatabase(db);
    db = openDatabase({ path: join(dir, "db.sqlite"), durability: "full", migrations: schema });
    expect(names(db)).toHaveLength(200);
  });
});
