import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { closeDatabase, openDatabase, type SqliteDatabase } from "../../../server/store/database.js";
import { CoalescedWrites } from "../../../server/store/coalesced-writes.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";

let db: SqliteDatabase;
let committer: GroupCommitter;
beforeEach(() => {
  db = openDatabase({ path: ":memory:", durability: "full", migrations: [] });
  db.exec("CREATE TABLE items (n INTEGER NOT NULL)");
  committer = new GroupCommitter(db);
});
afterEach(() => {
  committer.close();
  closeDatabase(db);
});

/** Writes that insert their items and answer each with its position in its op; records every op's items. */
function inserting(maxPerWrite: number): { writes: CoalescedWrites<number, string>; ops: number[][] } {
  const ops: number[][] = [];
  const insert = db.prepare("INSERT INTO items (n) VALUES (?)");
  const writes = new CoalescedWrites<number, string>(
    committer,
    (items) => {
      ops.push([...items]);
      return items.map((n, i) => {
        if (n < 0) throw new Error(`refused ${n}`);
        insert.run(n);
        return `${n}@${i}`;
      });
    },
    maxPerWrite,
  );
  return { writes, ops };
}

const stored = (): number[] => (db.prepare("SELECT n FROM items ORDER BY rowid").pluck().all() as number[]);

describe("CoalescedWrites", () => {
  it("writes the items added before a commit in ops of at most maxPerWrite, in order, each answered with its own result", async () => {
    const { writes, ops } = inserting(3);
    const write = vi.spyOn(committer, "write");
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => writes.add(n)));
    expect(results).toEqual(["1@0", "2@1", "3@2", "4@0", "5@1"]);
    expect(ops).toEqual([[1, 2, 3], [4, 5]]);
    expect(write.mock.calls.map((call) => call[2])).toEqual([3, 3]);
    expect(stored()).toEqual([1, 2, 3, 4, 5]);
    // An op that has run takes no more items.
    expect(await writes.add(6)).toBe("6@0");
    expect(ops.at(-1)).toEqual([6]);
  });

  it("fails every item of an op that fails, and commits the other ops", async () => {
    const { writes } = inserting(2);
    const settled = await Promise.allSettled([writes.add(1), writes.add(-2), writes.add(3)]);
    expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected", "fulfilled"]);
    expect(stored()).toEqual([3]);
  });

  it("fails the items of an op rejected before it ran (the committer closed), and later ones too", async () => {
    const { writes } = inserting(10);
    committer.close();
    await expect(writes.add(1)).rejects.toThrow();
    await expect(writes.add(2)).rejects.toThrow();
    expect(stored()).toEqual([]);
  });
});
