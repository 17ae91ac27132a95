import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { closeDatabase, openDatabase, openReader, type Migration, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";
import {
  RevisionCompactedError,
  RevisionLog,
  revisionLogSchema,
  type RevisionLogCodec,
} from "../../../server/store/revision-log.js";

interface Event {
  readonly id: string;
  readonly n: number;
}

const codec: RevisionLogCodec<Event> = {
  encode: (event) => new TextEncoder().encode(JSON.stringify(event)),
  decode: (bytes) => JSON.parse(new TextDecoder().decode(bytes)) as Event,
};

const migrations: Migration[] = [
  {
    version: 1,
    description: "two revision streams, and parents/children whose foreign key is checked at COMMIT",
    up: (db) => {
      db.exec(revisionLogSchema("topology"));
      db.exec(revisionLogSchema("other"));
      db.exec(`
        CREATE TABLE parents (id INTEGER PRIMARY KEY);
        CREATE TABLE children (id INTEGER PRIMARY KEY,
          parent_id INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
      `);
    },
  },
];

function event(n: number, id = `e${n}`): Event {
  return { id, n };
}

let dir: string;
let dbPath: string;
let db: SqliteDatabase;
let committer: GroupCommitter;
let log: RevisionLog<Event>;

function open(path: string): void {
  db = openDatabase({ path, durability: "normal", migrations });
  committer = new GroupCommitter(db, { maxBatch: 50 });
  log = new RevisionLog(db, "topology", codec);
  committer.onRollback(() => log.reload());
}

function append(events: Event[], nowMs = 1000): Promise<number> {
  return committer.write(() => log.append(events, nowMs));
}

/** Appends `count` single-event changes stamped `nowMs(i)`, one write each. */
async function appendMany(count: number, nowMs: (i: number) => number = () => 1000): Promise<number[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => append([event(i + 1)], nowMs(i))));
}

function compact(keepChanges: number, keepAgeMs: number, nowMs: number, maxChanges?: number): Promise<number> {
  return committer.write(() => log.compact({ keepChanges, keepAgeMs, maxChanges }, nowMs));
}

function revisions(changes: { revision: number }[]): number[] {
  return changes.map((change) => change.revision);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lf-revision-log-"));
  dbPath = join(dir, "db.sqlite");
});
afterEach(() => {
  committer.close();
  closeDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

describe("revisionLogSchema", () => {
  it.each(["", "Topology", "mirror-config", "1stream", "x; DROP TABLE parents", "a".repeat(49)])(
    "rejects the stream name %j",
    (stream) => {
      open(":memory:");
      expect(() => revisionLogSchema(stream)).toThrow(RangeError);
      expect(() => new RevisionLog(db, stream, codec)).toThrow(RangeError);
    },
  );

  it("creates a stream per call and shares revision_streams between them", () => {
    open(":memory:");
    const streams = db.prepare("SELECT stream, current, compacted_through FROM revision_streams ORDER BY stream").all();
    expect(streams).toEqual([
      { stream: "other", current: 0, compacted_through: 0 },
      { stream: "topology", current: 0, compacted_through: 0 },
    ]);
  });

  it("names the missing migration when the stream was never created", () => {
    open(":memory:");
    expect(() => new RevisionLog(db, "mirror_config", codec)).toThrow(/revisionLogSchema\("mirror_config"\)/);
  });
});

describe.each([
  { backend: ":memory:", path: () => ":memory:" },
  { backend: "a temp file", path: () => dbPath },
])("RevisionLog on $backend", ({ path }) => {
  beforeEach(() => open(path()));

  it("starts empty at revision 0 with revision 1 the oldest available", () => {
    expect(log.currentRevision).toBe(0);
    expect(log.oldestAvailableRevision).toBe(1);
    expect(log.readAfter(0, 10)).toEqual([]);
  });

  it("assigns gap-free revisions in queue order across batches", async () => {
    const committed: number[] = [];
    const writes = Array.from({ length: 120 }, (_, i) =>
      committer.write(
        () => log.append([event(i)], 1000),
        (revision) => committed.push(revision),
      ),
    );
    expect(await Promise.all(writes)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    expect(committed).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    expect(log.currentRevision).toBe(120);
    const rows = db.prepare("SELECT current FROM revision_streams WHERE stream = 'topology'").pluck().get();
    expect(rows).toBe(120);
  });

  it("sees its own appends inside the open transaction", async () => {
    await appendMany(3);
    const seen = await committer.write(() => {
      const before = log.currentRevision;
      log.append([event(9)], 1000);
      return [before, log.currentRevision];
    });
    expect(seen).toEqual([3, 4]);
  });

  it("stores one row per event with seq, time and the codec's bytes", async () => {
    await append([event(1), event(2), event(3)], 4242);
    const rows = db
      .prepare("SELECT revision, seq, created_at_ms, payload FROM revision_log_topology ORDER BY revision, seq")
      .all() as { revision: number; seq: number; created_at_ms: number; payload: Buffer }[];
    expect(rows.map(({ revision, seq, created_at_ms }) => [revision, seq, created_at_ms])).toEqual([
      [1, 0, 4242],
      [1, 1, 4242],
      [1, 2, 4242],
    ]);
    expect(codec.decode(rows[2]!.payload)).toEqual(event(3));
  });

  it("rejects an empty change without using a revision", async () => {
    await expect(append([])).rejects.toThrow(RangeError);
    expect(await append([event(1)])).toBe(1);
  });

  it("refuses to append or compact outside a transaction, and to read inside one", async () => {
    expect(() => log.append([event(1)], 1000)).toThrow(/inside a committer op/);
    expect(() => log.compact({ keepChanges: 0, keepAgeMs: 0 }, 1000)).toThrow(/inside a committer op/);
    await expect(committer.write(() => log.readAfter(0, 1))).rejects.toThrow(/must not run inside a write transaction/);
    expect(log.currentRevision).toBe(0);
  });

  it("reuses the revision of an op rolled back to its savepoint", async () => {
    const failing = committer.write(() => {
      log.append([event(1)], 1000);
      throw new Error("op failed after appending");
    });
    const next = append([event(2)]);
    await expect(failing).rejects.toThrow("op failed after appending");
    expect(await next).toBe(1);
    expect(log.currentRevision).toBe(1);
    expect(log.readAfter(0, 10)).toEqual([{ revision: 1, events: [event(2)] }]);
  });

  it("forgets the revision of the batch's last op when it is rolled back to its savepoint", async () => {
    await appendMany(2);
    const inside = await committer
      .write(() => {
        log.append([event(3)], 1000);
        throw new Error(`rolled back at ${log.currentRevision}`);
      })
      .catch((error: Error) => error.message);
    expect(inside).toBe("rolled back at 3");
    expect(log.currentRevision).toBe(2);
    expect(await append([event(4)])).toBe(3);
  });

  it("rolls its revision back with a failed COMMIT, so the next commit reuses it", async () => {
    await appendMany(2);
    const orphan = committer.write(() => {
      log.append([event(3)], 1000);
      db.prepare("INSERT INTO children (parent_id) VALUES (999)").run();
    });
    const sameBatch = append([event(4)]);
    await expect(orphan).rejects.toThrow(/FOREIGN KEY/);
    await expect(sameBatch).rejects.toThrow(/FOREIGN KEY/);
    expect(log.currentRevision).toBe(2);
    expect(await append([event(5)])).toBe(3);
    expect(log.readAfter(2, 10)).toEqual([{ revision: 3, events: [event(5)] }]);
  });

  it("reload re-reads counters changed behind its back", async () => {
    await appendMany(2);
    expect(log.currentRevision).toBe(2);
    db.prepare("UPDATE revision_streams SET current = 7, compacted_through = 5 WHERE stream = 'topology'").run();
    log.reload();
    expect(log.currentRevision).toBe(7);
    expect(log.oldestAvailableRevision).toBe(6);
  });

  it.each([
    { after: 0, limit: 1, expected: [1] },
    { after: 0, limit: 4, expected: [1, 2, 3, 4] },
    { after: 0, limit: 100, expected: [1, 2, 3, 4, 5, 6] },
    { after: 2, limit: 3, expected: [3, 4, 5] },
    { after: 5, limit: 10, expected: [6] },
    { after: 6, limit: 10, expected: [] },
    { after: 40, limit: 10, expected: [] },
  ])("readAfter($after, $limit) returns changes $expected", async ({ after, limit, expected }) => {
    // Changes 2 and 5 hold three events, so a row limit would cut them short.
    for (let r = 1; r <= 6; r++) {
      const events = r === 2 || r === 5 ? [event(r, "a"), event(r, "b"), event(r, "c")] : [event(r)];
      await append(events);
    }
    const changes = log.readAfter(after, limit);
    expect(revisions(changes)).toEqual(expected);
    for (const change of changes) {
      const ids = change.revision === 2 || change.revision === 5 ? ["a", "b", "c"] : [`e${change.revision}`];
      expect(change.events).toEqual(ids.map((id) => event(change.revision, id)));
    }
  });

  it.each([
    { revision: -1, limit: 1 },
    { revision: 1.5, limit: 1 },
    { revision: 0, limit: 0 },
    { revision: 0, limit: 2.5 },
  ])("readAfter($revision, $limit) is a RangeError", ({ revision, limit }) => {
    expect(() => log.readAfter(revision, limit)).toThrow(RangeError);
  });

  it.each([
    {
      rule: "the newest keepChanges are kept although old",
      keepChanges: 3, keepAgeMs: 0, times: [1, 2, 3, 4, 5, 6, 7, 8], now: 100, removed: 5, oldest: 6,
    },
    {
      rule: "nothing younger than keepAgeMs is removed",
      keepChanges: 0, keepAgeMs: 50, times: [60, 70, 80, 90], now: 100, removed: 0, oldest: 1,
    },
    {
      rule: "removal stops at the first young change",
      keepChanges: 1, keepAgeMs: 50, times: [10, 20, 30, 60, 70, 80], now: 100, removed: 3, oldest: 4,
    },
    {
      rule: "a change exactly keepAgeMs old is kept",
      keepChanges: 0, keepAgeMs: 50, times: [49, 50, 51], now: 100, removed: 1, oldest: 2,
    },
    {
      rule: "a clock that went back does not remove a young change",
      keepChanges: 0, keepAgeMs: 50, times: [10, 90, 20, 30], now: 100, removed: 1, oldest: 2,
    },
    {
      rule: "keepChanges 0 and everything old empties the log",
      keepChanges: 0, keepAgeMs: 10, times: [1, 2, 3], now: 100, removed: 3, oldest: 4,
    },
    {
      rule: "keepChanges above the log size removes nothing",
      keepChanges: 10, keepAgeMs: 0, times: [1, 2, 3], now: 100, removed: 0, oldest: 1,
    },
  ])("compact: $rule", async ({ keepChanges, keepAgeMs, times, now, removed, oldest }) => {
    await appendMany(times.length, (i) => times[i]!);
    expect(await compact(keepChanges, keepAgeMs, now)).toBe(removed);
    expect(log.oldestAvailableRevision).toBe(oldest);
    expect(log.currentRevision).toBe(times.length);
    expect(revisions(log.readAfter(oldest - 1, 100))).toEqual(
      Array.from({ length: times.length - oldest + 1 }, (_, i) => oldest + i),
    );
    const rowCount = db.prepare("SELECT COUNT(*) FROM revision_log_topology").pluck().get();
    expect(rowCount).toBe(times.length - removed);
    expect(db.prepare("SELECT compacted_through FROM revision_streams WHERE stream = 'topology'").pluck().get()).toBe(
      oldest - 1,
    );
  });

  it("compact removes at most maxChanges per call and continues on the next", async () => {
    await appendMany(10, () => 1);
    expect(await compact(2, 0, 100, 3)).toBe(3);
    expect(log.oldestAvailableRevision).toBe(4);
    expect(await compact(2, 0, 100, 3)).toBe(3);
    expect(await compact(2, 0, 100, 3)).toBe(2);
    expect(await compact(2, 0, 100, 3)).toBe(0);
    expect(log.oldestAvailableRevision).toBe(9);
  });

  it.each([
    { keepChanges: -1, keepAgeMs: 0 },
    { keepChanges: 1.5, keepAgeMs: 0 },
    { keepChanges: 0, keepAgeMs: -1 },
    { keepChanges: 0, keepAgeMs: Number.NaN },
  ])("compact($keepChanges, $keepAgeMs) is a RangeError", async ({ keepChanges, keepAgeMs }) => {
    await expect(compact(keepChanges, keepAgeMs, 100)).rejects.toThrow(RangeError);
  });

  it("answers a read of compacted history with RevisionCompactedError, and continues revisions after an emptied log", async () => {
    await appendMany(5, () => 1);
    await compact(0, 0, 100);
    expect(log.oldestAvailableRevision).toBe(6);
    expect(() => log.readAfter(4, 10)).toThrow(RevisionCompactedError);
    expect(() => log.readAfter(0, 10)).toThrow(/revision 0 of stream topology is compacted/);
    expect(log.readAfter(5, 10)).toEqual([]);
    expect(await append([event(6)])).toBe(6);
    expect(log.readAfter(5, 10)).toEqual([{ revision: 6, events: [event(6)] }]);
  });

  it("undoes a compaction rolled back with its op", async () => {
    await appendMany(5, () => 1);
    await expect(
      committer.write(() => {
        log.compact({ keepChanges: 0, keepAgeMs: 0 }, 100);
        throw new Error("after compacting");
      }),
    ).rejects.toThrow("after compacting");
    expect(log.oldestAvailableRevision).toBe(1);
    expect(revisions(log.readAfter(0, 10))).toEqual([1, 2, 3, 4, 5]);
  });

  it("keeps streams independent", async () => {
    const other = new RevisionLog(db, "other", codec);
    await appendMany(3);
    expect(await committer.write(() => other.append([event(100)], 1))).toBe(1);
    expect(log.currentRevision).toBe(3);
    expect(other.readAfter(0, 10)).toEqual([{ revision: 1, events: [event(100)] }]);
  });
});

describe("RevisionLog durability", () => {
  it("keeps revisions, events and compaction across a reopen", async () => {
    open(dbPath);
    await appendMany(6, (i) => i);
    await append([event(7, "x"), event(7, "y")], 10);
    await compact(3, 0, 100);
    committer.close();
    closeDatabase(db);

    open(dbPath);
    expect(log.currentRevision).toBe(7);
    expect(log.oldestAvailableRevision).toBe(5);
    expect(log.readAfter(4, 10)).toEqual([
      { revision: 5, events: [event(5)] },
      { revision: 6, events: [event(6)] },
      { revision: 7, events: [event(7, "x"), event(7, "y")] },
    ]);
    expect(await append([event(8)])).toBe(8);
  });
});

describe("RevisionLog with a reader connection", () => {
  /** `read`'s result on the next event-loop turn (its error rejects). */
  function nextTurn<T>(read: () => T): Promise<T> {
    return new Promise((resolve, reject) =>
      setImmediate(() => {
        try {
          resolve(read());
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      }),
    );
  }

  it("serves readAfter from committed data while a stepped write holds the writer's transaction open", async () => {
    open(dbPath);
    const reader = openReader(db)!;
    try {
      await appendMany(2);
      const watched = new RevisionLog(db, "topology", codec, reader);
      const stepped = committer.writeInSteps(function* () {
        yield;
        yield;
        return watched.append([event(3)], 1000);
      });
      // Between the steps: the log with a reader answers; the one without refuses, as it must.
      const between = await nextTurn(() => ({ open: db.inTransaction, read: revisions(watched.readAfter(0, 10)) }));
      expect(between).toEqual({ open: true, read: [1, 2] });
      await expect(nextTurn(() => log.readAfter(0, 10))).rejects.toThrow(/must not run inside a write transaction/);
      expect(await stepped).toBe(3);
      expect(revisions(watched.readAfter(0, 10))).toEqual([1, 2, 3]);
    } finally {
      reader.close();
    }
  });
});
