import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { closeDatabase, openDatabase, type Migration, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter, StoreClosedError, type CommitStats } from "../../../server/store/group-commit.js";

const schema: Migration[] = [
  {
    version: 1,
    description: "items, and children whose foreign key is checked at COMMIT",
    up: (db) => {
      db.exec(`
        CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE children (
          id INTEGER PRIMARY KEY,
          item_id INTEGER NOT NULL REFERENCES items (id) DEFERRABLE INITIALLY DEFERRED
        );
      `);
    },
  },
];

function insertItem(name: string): (db: SqliteDatabase) => number {
  return (db) => Number(db.prepare("INSERT INTO items (name) VALUES (?)").run(name).lastInsertRowid);
}

function itemNames(db: SqliteDatabase): string[] {
  return db.prepare("SELECT name FROM items ORDER BY id").pluck().all() as string[];
}

let dir: string;
let dbPath: string;
let db: SqliteDatabase;
let batches: CommitStats[];

function committer(maxBatch?: number): GroupCommitter {
  return new GroupCommitter(db, { maxBatch, onCommit: (stats) => batches.push(stats) });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lf-store-gc-"));
  dbPath = join(dir, "db.sqlite");
  db = openDatabase({ path: dbPath, durability: "normal", migrations: schema });
  batches = [];
});
afterEach(() => {
  closeDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

describe("GroupCommitter batching", () => {
  it("bounds a batch's total weight, always taking at least one write", async () => {
    const gc = new GroupCommitter(db, { maxBatchWeight: 1000, onCommit: (stats) => batches.push(stats) });
    const weights = [600, 300, 200, 1500, 1, 1];
    await Promise.all(weights.map((weight, i) => gc.write(insertItem(`w${i}`), undefined, weight)));
    // 600+300 fit; +200 would pass 1000; 200 alone; 1500 alone (over the bound, but first); then 1+1.
    expect(batches.map((b) => b.batchSize)).toEqual([2, 1, 1, 2]);
    expect(itemNames(db)).toEqual(weights.map((_, i) => `w${i}`));
  });

  it("commits 200 writes issued in one turn in one batch, answering each with its own result", async () => {
    const gc = committer();
    const committed: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        gc.write(
          (conn) => {
            insertItem(`item-${i}`)(conn);
            return i;
          },
          (result) => committed.push(result),
        ),
      ),
    );
    expect(results).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(committed).toEqual(results);
    expect(batches.map((stats) => stats.batchSize)).toEqual([200]);
    expect(batches[0]?.seconds).toBeGreaterThan(0);
    expect(itemNames(db)).toHaveLength(200);
  });

  it("caps batches at maxBatch and notifies in queue order across batches", async () => {
    const gc = committer(10);
    const committed: number[] = [];
    const writes = Array.from({ length: 25 }, (_, i) =>
      gc.write(insertItem(`item-${i}`), () => committed.push(i)),
    );
    expect(gc.pending).toBe(25);
    await Promise.all(writes);
    expect(batches.map((stats) => stats.batchSize)).toEqual([10, 10, 5]);
    expect(committed).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(gc.pending).toBe(0);
  });

  it("puts writes issued from an onCommitted callback into a later batch", async () => {
    const gc = committer();
    let inner: Promise<number> | undefined;
    await gc.write(insertItem("outer"), () => {
      inner = gc.write(insertItem("inner"));
    });
    await expect(inner).resolves.toBe(2);
    expect(batches.map((stats) => stats.batchSize)).toEqual([1, 1]);
    expect(itemNames(db)).toEqual(["outer", "inner"]);
  });

  it("ignores a flush requested from within a batch, keeping notification order", async () => {
    const gc = committer();
    const committed: string[] = [];
    const first = gc.write(insertItem("a"), () => {
      committed.push("a");
      void gc.write(insertItem("c"), () => committed.push("c"));
      gc.flush();
    });
    const second = gc.write(insertItem("b"), () => committed.push("b"));
    await Promise.all([first, second]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(committed).toEqual(["a", "b", "c"]);
    expect(batches.map((stats) => stats.batchSize)).toEqual([2, 1]);
  });

  it.each([0, -1, 1.5, Number.NaN])("rejects maxBatch %s", (maxBatch) => {
    expect(() => new GroupCommitter(db, { maxBatch })).toThrow(
      `maxBatch must be a positive integer, got ${maxBatch}`,
    );
  });
});

describe("GroupCommitter failures", () => {
  it("rolls back and rejects only the op that threw", async () => {
    const gc = committer();
    const failure = new Error("op failed");
    const ok1 = gc.write(insertItem("kept-1"));
    const bad = gc.write((conn) => {
      insertItem("rolled-back")(conn);
      throw failure;
    });
    const ok2 = gc.write(insertItem("kept-2"));
    await expect(bad).rejects.toBe(failure);
    await expect(Promise.all([ok1, ok2])).resolves.toEqual([1, 2]);
    expect(itemNames(db)).toEqual(["kept-1", "kept-2"]);
    expect(batches.map((stats) => stats.batchSize)).toEqual([3]);
  });

  it("rejects every caller of the batch when COMMIT fails, tells rollback listeners once, and later writes still commit", async () => {
    const gc = committer();
    const rollbacks: unknown[] = [];
    gc.onRollback((error) => rollbacks.push(error));
    const writes = [
      gc.write(insertItem("lost-1")),
      gc.write((conn) => conn.prepare("INSERT INTO children (item_id) VALUES (999)").run().changes),
      gc.write(insertItem("lost-2")),
    ];
    const outcomes = await Promise.allSettled(writes);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["rejected", "rejected", "rejected"]);
    for (const outcome of outcomes) {
      expect((outcome as PromiseRejectedResult).reason).toMatchObject({ message: "FOREIGN KEY constraint failed" });
    }
    expect(batches).toEqual([]);
    expect(db.inTransaction).toBe(false);
    expect(rollbacks).toHaveLength(1);
    expect(rollbacks[0]).toMatchObject({ message: "FOREIGN KEY constraint failed" });

    await expect(gc.write(insertItem("later"))).resolves.toBe(1);
    expect(itemNames(db)).toEqual(["later"]);
    expect(rollbacks).toHaveLength(1);
  });

  it("rejects every caller of the batch when BEGIN fails, and later writes still commit", async () => {
    const gc = committer();
    const other = openDatabase({ path: dbPath, durability: "normal", migrations: schema });
    db.pragma("busy_timeout = 0");
    other.prepare("BEGIN IMMEDIATE").run();
    try {
      const outcomes = await Promise.allSettled([gc.write(insertItem("a")), gc.write(insertItem("b"))]);
      expect(outcomes.map((outcome) => (outcome as PromiseRejectedResult).reason?.code)).toEqual([
        "SQLITE_BUSY",
        "SQLITE_BUSY",
      ]);
    } finally {
      other.prepare("ROLLBACK").run();
      closeDatabase(other);
    }
    await expect(gc.write(insertItem("later"))).resolves.toBe(1);
    expect(itemNames(db)).toEqual(["later"]);
  });

  it("rejects every caller of the batch when an op's error ends the whole transaction", async () => {
    const gc = committer();
    const pageCount = db.pragma("page_count", { simple: true }) as number;
    db.pragma(`max_page_count = ${pageCount + 2}`);
    const outcomes = await Promise.allSettled([
      gc.write(insertItem("lost-1")),
      gc.write((conn) => conn.prepare("INSERT INTO items (name) VALUES (?)").run("x".repeat(1_000_000)).changes),
      gc.write(insertItem("lost-2")),
    ]);
    expect(outcomes.map((outcome) => (outcome as PromiseRejectedResult).reason?.code)).toEqual([
      "SQLITE_FULL",
      "SQLITE_FULL",
      "SQLITE_FULL",
    ]);
    expect(db.inTransaction).toBe(false);
    expect(batches).toEqual([]);

    await expect(gc.write(insertItem("later"))).resolves.toBe(1);
    expect(itemNames(db)).toEqual(["later"]);
  });

  it("rejects only the caller whose onCommitted threw, after running the others", async () => {
    const gc = committer();
    const failure = new Error("watcher failed");
    const committed: string[] = [];
    const outcomes = await Promise.allSettled([
      gc.write(insertItem("a"), () => committed.push("a")),
      gc.write(insertItem("b"), () => {
        throw failure;
      }),
      gc.write(insertItem("c"), () => committed.push("c")),
    ]);
    expect(outcomes).toEqual([
      { status: "fulfilled", value: 1 },
      { status: "rejected", reason: failure },
      { status: "fulfilled", value: 3 },
    ]);
    expect(committed).toEqual(["a", "c"]);
    expect(itemNames(db)).toEqual(["a", "b", "c"]);
  });
});

describe("GroupCommitter visibility and shutdown", () => {
  it("answers only after COMMIT: another connection sees the row in onCommitted and then()", async () => {
    const gc = committer();
    const other = openDatabase({ path: dbPath, durability: "normal", migrations: schema });
    const seen: Record<string, string[]> = {};
    try {
      await gc
        .write(
          (conn) => {
            insertItem("visible")(conn);
            seen.op = itemNames(other);
          },
          () => {
            seen.onCommitted = itemNames(other);
          },
        )
        .then(() => {
          seen.then = itemNames(other);
        });
    } finally {
      closeDatabase(other);
    }
    expect(seen).toEqual({ op: [], onCommitted: ["visible"], then: ["visible"] });
  });

  it("commits pending writes on close and rejects later writes with StoreClosedError", async () => {
    const gc = committer(2);
    const writes = [gc.write(insertItem("a")), gc.write(insertItem("b")), gc.write(insertItem("c"))];
    gc.close();
    expect(gc.pending).toBe(0);
    expect(itemNames(db)).toEqual(["a", "b", "c"]);
    expect(batches.map((stats) => stats.batchSize)).toEqual([2, 1]);
    await expect(Promise.all(writes)).resolves.toEqual([1, 2, 3]);
    await expect(gc.write(insertItem("d"))).rejects.toBeInstanceOf(StoreClosedError);
    expect(itemNames(db)).toEqual(["a", "b", "c"]);
  });
});
