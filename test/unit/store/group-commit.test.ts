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

/** A stepped op inserting `names`, one per step, recording each step in `log`. */
function insertInSteps(names: readonly string[], log: string[]): (db: SqliteDatabase) => Generator<void, number> {
  return function* (conn) {
    for (const [i, name] of names.entries()) {
      if (i > 0) yield;
      log.push(`step ${name}`);
      insertItem(name)(conn);
    }
    return names.length;
  };
}

describe("GroupCommitter stepped writes", () => {
  it("runs a stepped write as a batch of its own, serving the event loop between steps, committing at the end", async () => {
    const gc = committer();
    const log: string[] = [];
    const other = openDatabase({ path: dbPath, durability: "normal", migrations: schema });
    try {
      const before = [gc.write(insertItem("a")), gc.write(insertItem("b"))];
      const stepped = gc.writeInSteps(insertInSteps(["s1", "s2", "s3"], log), (count) => log.push(`committed ${count}`));
      const after = gc.write(insertItem("c"));
      // Between steps the loop runs other callbacks; another connection sees committed rows only.
      let settled = false;
      void stepped.finally(() => (settled = true));
      const poll = (): void => {
        if (settled) return;
        log.push(`turn: ${itemNames(other).join(",")}`);
        setImmediate(poll);
      };
      setImmediate(poll);
      await expect(stepped).resolves.toBe(3);
      await Promise.all([...before, after]);
    } finally {
      closeDatabase(other);
    }
    expect(batches.map((stats) => stats.batchSize)).toEqual([2, 1, 1]);
    expect(itemNames(db)).toEqual(["a", "b", "s1", "s2", "s3", "c"]);
    const steps = log.filter((entry) => !entry.startsWith("turn"));
    expect(steps).toEqual(["step s1", "step s2", "step s3", "committed 3"]);
    // A turn ran between each two steps, and saw a and b (committed) but none of the steps.
    const between = log.slice(log.indexOf("step s1"), log.indexOf("step s3"));
    expect(between.filter((entry) => entry.startsWith("turn"))).not.toHaveLength(0);
    expect(between.filter((entry) => entry.startsWith("turn")).every((entry) => entry === "turn: a,b")).toBe(true);
    expect(log.indexOf("step s2") - log.indexOf("step s1")).toBeGreaterThan(1);
    expect(log.indexOf("step s3") - log.indexOf("step s2")).toBeGreaterThan(1);
  });

  it("rolls back only a stepped write whose later step throws, and commits the next write", async () => {
    const gc = committer();
    const failing = gc.writeInSteps(function* (conn) {
      insertItem("x1")(conn);
      yield;
      insertItem("x2")(conn);
      yield;
      throw new Error("step failed");
    });
    const next = gc.write(insertItem("after"));
    await expect(failing).rejects.toThrow("step failed");
    await expect(next).resolves.toBe(1);
    expect(itemNames(db)).toEqual(["after"]);
  });

  it("fails the stepped write when a step's error ends the transaction, tells rollback listeners, and goes on", async () => {
    const gc = committer();
    const rollbacks: unknown[] = [];
    gc.onRollback((error) => rollbacks.push(error));
    const failing = gc.writeInSteps(function* (conn) {
      insertItem("x1")(conn);
      yield;
      conn.prepare("ROLLBACK").run();
      throw new Error("transaction gone");
    });
    await expect(failing).rejects.toThrow("transaction gone");
    expect(rollbacks).toHaveLength(1);
    await expect(gc.write(insertItem("after"))).resolves.toBe(1);
    expect(itemNames(db)).toEqual(["after"]);
  });

  it("on close runs the steps left of a stepped write at once, commits it, then what was queued", async () => {
    const gc = committer();
    const log: string[] = [];
    const stepped = gc.writeInSteps(insertInSteps(["s1", "s2", "s3"], log));
    const queuedStepped = gc.writeInSteps(insertInSteps(["t1", "t2"], log));
    const queued = gc.write(insertItem("q"));
    gc.flush();
    expect(log).toEqual(["step s1"]);
    gc.close();
    expect(log).toEqual(["step s1", "step s2", "step s3", "step t1", "step t2"]);
    expect(itemNames(db)).toEqual(["s1", "s2", "s3", "t1", "t2", "q"]);
    await expect(Promise.all([stepped, queuedStepped, queued])).resolves.toEqual([3, 2, 6]);
    await expect(gc.writeInSteps(insertInSteps(["late"], log))).rejects.toBeInstanceOf(StoreClosedError);
  });

  it("lets a stepped write's onCommitted close the committer: answered once, nothing rolled back, the queue still committed", async () => {
    const gc = committer();
    const log: string[] = [];
    const rollbacks: unknown[] = [];
    gc.onRollback((error) => rollbacks.push(error));
    const stepped = gc.writeInSteps(insertInSteps(["s1", "s2"], log), () => gc.close());
    const queued = gc.write(insertItem("q"));
    await expect(stepped).resolves.toBe(2);
    await expect(queued).resolves.toBe(3);
    expect(rollbacks).toEqual([]);
    expect(log).toEqual(["step s1", "step s2"]);
    expect(itemNames(db)).toEqual(["s1", "s2", "q"]);
    expect(batches.map((stats) => stats.batchSize)).toEqual([1, 1]);
  });
});
