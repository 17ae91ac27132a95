import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  StoreOpenError,
  closeDatabase,
  openDatabase,
  pingDatabase,
  type Durability,
  type Migration,
  type SqliteDatabase,
} from "../../../server/store/database.js";

function createTable(version: number, log: number[] = []): Migration {
  return {
    version,
    description: `create table t${version}`,
    up: (db) => {
      log.push(version);
      db.exec(`CREATE TABLE t${version} (id INTEGER PRIMARY KEY)`);
    },
  };
}

function userVersion(db: SqliteDatabase): number {
  return db.pragma("user_version", { simple: true }) as number;
}

function tableExists(db: SqliteDatabase, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

let dir: string;
let dbPath: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lf-store-db-"));
  dbPath = join(dir, "db.sqlite");
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("openDatabase migrations", () => {
  it("applies migrations in version order and sets user_version", () => {
    const log: number[] = [];
    const db = openDatabase({
      path: ":memory:",
      durability: "normal",
      migrations: [createTable(1, log), createTable(2, log), createTable(5, log)],
    });
    expect(log).toEqual([1, 2, 5]);
    expect(userVersion(db)).toBe(5);
    expect(["t1", "t2", "t5"].map((name) => tableExists(db, name))).toEqual([true, true, true]);
    closeDatabase(db);
  });

  it("applies nothing again on reopen and only the new migrations when some were appended", () => {
    const log: number[] = [];
    closeDatabase(openDatabase({ path: dbPath, durability: "normal", migrations: [createTable(1, log), createTable(2, log)] }));
    const reopened = openDatabase({ path: dbPath, durability: "normal", migrations: [createTable(1, log), createTable(2, log)] });
    expect(userVersion(reopened)).toBe(2);
    closeDatabase(reopened);
    const upgraded = openDatabase({
      path: dbPath,
      durability: "normal",
      migrations: [createTable(1, log), createTable(2, log), createTable(3, log)],
    });
    expect(log).toEqual([1, 2, 3]);
    expect(userVersion(upgraded)).toBe(3);
    closeDatabase(upgraded);
  });

  it("refuses a database whose schema is newer than the newest migration", () => {
    const all = [1, 2, 3, 4, 5, 6, 7].map((version) => createTable(version));
    closeDatabase(openDatabase({ path: dbPath, durability: "normal", migrations: all }));
    const open = () => openDatabase({ path: dbPath, durability: "normal", migrations: all.slice(0, 5) });
    expect(open).toThrow(StoreOpenError);
    expect(open).toThrow(
      `cannot open database ${dbPath}: database schema version 7 is newer than this server understands (5); upgrade the server`,
    );
  });

  it.each([
    { versions: [2], message: "migrations[0].version must be 1, got 2" },
    { versions: [0], message: "migrations[0].version must be 1, got 0" },
    { versions: [1, 1], message: "migrations[1].version must be an integer greater than 1, got 1" },
    { versions: [1, 3, 2], message: "migrations[2].version must be an integer greater than 3, got 2" },
    { versions: [1, 2.5], message: "migrations[1].version must be an integer greater than 1, got 2.5" },
  ])("rejects migration versions $versions before touching the disk", ({ versions, message }) => {
    const migrations = versions.map((version) => createTable(version));
    expect(() => openDatabase({ path: dbPath, durability: "normal", migrations })).toThrow(message);
    expect(existsSync(dbPath)).toBe(false);
  });

  it("leaves user_version at the previous migration when a migration fails", () => {
    const failure = new Error("boom");
    const failing: Migration = {
      version: 2,
      description: "creates a table, then fails",
      up: (db) => {
        db.exec("CREATE TABLE half_done (id INTEGER)");
        throw failure;
      },
    };
    let thrown: unknown;
    try {
      openDatabase({ path: dbPath, durability: "normal", migrations: [createTable(1), failing] });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StoreOpenError);
    expect((thrown as StoreOpenError).cause).toBe(failure);
    expect((thrown as StoreOpenError).message).toBe(`cannot open database ${dbPath}: boom`);

    const db = openDatabase({ path: dbPath, durability: "normal", migrations: [createTable(1)] });
    expect(userVersion(db)).toBe(1);
    expect(tableExists(db, "t1")).toBe(true);
    expect(tableExists(db, "half_done")).toBe(false);
    closeDatabase(db);
  });
});

describe("openDatabase files and pragmas", () => {
  it("creates missing parent directories", () => {
    const nested = join(dir, "a", "b", "c", "db.sqlite");
    closeDatabase(openDatabase({ path: nested, durability: "normal", migrations: [] }));
    expect(existsSync(nested)).toBe(true);
  });

  it("throws StoreOpenError naming the path when the directory cannot be created", () => {
    const file = join(dir, "file.txt");
    writeFileSync(file, "not a directory");
    const path = join(file, "db.sqlite");
    let thrown: unknown;
    try {
      openDatabase({ path, durability: "normal", migrations: [] });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StoreOpenError);
    expect((thrown as StoreOpenError).path).toBe(path);
    expect((thrown as StoreOpenError).message).toContain(path);
    expect((thrown as StoreOpenError).cause).toBeInstanceOf(Error);
  });

  it("throws StoreOpenError for a file that is not a database", () => {
    writeFileSync(dbPath, "this is a text file, not an SQLite database\n".repeat(100));
    expect(() => openDatabase({ path: dbPath, durability: "normal", migrations: [] })).toThrow(
      /^cannot open database .*db\.sqlite: file is not a database$/,
    );
    expect(() => openDatabase({ path: dbPath, durability: "normal", migrations: [] })).toThrow(StoreOpenError);
  });

  it("uses WAL for files and keeps :memory: in memory journaling", () => {
    const file = openDatabase({ path: dbPath, durability: "normal", migrations: [] });
    const memory = openDatabase({ path: ":memory:", durability: "normal", migrations: [] });
    expect(file.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(memory.pragma("journal_mode", { simple: true })).toBe("memory");
    closeDatabase(file);
    closeDatabase(memory);
  });

  it.each<[Durability, number]>([
    ["normal", 1],
    ["full", 2],
  ])("sets synchronous for durability %s to %i", (durability, synchronous) => {
    const db = openDatabase({ path: dbPath, durability, migrations: [] });
    expect(db.pragma("synchronous", { simple: true })).toBe(synchronous);
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("busy_timeout", { simple: true })).toBe(5000);
    closeDatabase(db);
  });
});

describe("pingDatabase and closeDatabase", () => {
  it("pings true while open and false after close", () => {
    const db = openDatabase({ path: ":memory:", durability: "normal", migrations: [] });
    expect(pingDatabase(db)).toBe(true);
    closeDatabase(db);
    expect(pingDatabase(db)).toBe(false);
  });

  it("checkpoints the WAL away on close, keeps the data, and tolerates a second close", () => {
    const db = openDatabase({ path: dbPath, durability: "full", migrations: [createTable(1)] });
    db.prepare("INSERT INTO t1 (id) VALUES (?)").run(42);
    expect(statSync(`${dbPath}-wal`).size).toBeGreaterThan(0);
    closeDatabase(db);
    expect(() => closeDatabase(db)).not.toThrow();
    expect(existsSync(`${dbPath}-wal`) ? statSync(`${dbPath}-wal`).size : 0).toBe(0);

    const reopened = openDatabase({ path: dbPath, durability: "full", migrations: [createTable(1)] });
    expect(reopened.prepare("SELECT id FROM t1").pluck().all()).toEqual([42]);
    closeDatabase(reopened);
  });
});
