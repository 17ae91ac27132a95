import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

/** A better-sqlite3 connection. Only `server/store/` handles one. */
export type SqliteDatabase = Database.Database;

/**
 * How hard a commit is pushed to stable storage.
 *
 * - `normal`: WAL with `synchronous = NORMAL`. Survives a process crash; a
 *   power loss or OS crash may lose the most recent commits but never
 *   corrupts the database.
 * - `full`: WAL with `synchronous = FULL`. Every acknowledged commit is
 *   fsynced, so it survives a power loss too. The group committer takes the
 *   fsync off the event loop (see `WalSync`): it is still done before any
 *   write is acknowledged, but requests keep being read meanwhile.
 */
export type Durability = "normal" | "full";

/**
 * One step of the schema. Once a migration has landed it is never edited;
 * changes are new migrations with the next version.
 */
export interface Migration {
  /** The `user_version` the schema has after `up` ran: 1 for the first, then strictly increasing. */
  readonly version: number;
  /** What the migration does, for people reading the list. */
  readonly description: string;
  /** Applies the change. Runs inside the transaction that also sets `user_version`. */
  readonly up: (db: SqliteDatabase) => void;
}

/** What {@link openDatabase} opens and how. */
export interface DatabaseOptions {
  /** File to open or create (parent directories are created), or `:memory:`. */
  path: string;
  /** Which failures an acknowledged commit survives; see {@link Durability}. */
  durability: Durability;
  /** The full schema history, ordered by version; pending ones are applied on open. */
  migrations: readonly Migration[];
}

/**
 * The database could not be opened: the directory is unwritable, the file is
 * not a database or is corrupt, its schema is newer than this server, or a
 * migration failed. The message names the path and the cause; `cause` holds
 * the original error.
 */
export class StoreOpenError extends Error {
  /**
   * @param path the database path as configured
   * @param cause what went wrong
   */
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`cannot open database ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
}

const memoryPath = ":memory:";

/**
 * Opens (or creates) the database, sets its pragmas and brings its schema up
 * to the newest migration.
 *
 * Steps:
 * 1. Check the migration list: versions are integers, the first is 1, each is
 *    greater than the one before. A bad list is a programming error and throws
 *    a plain `Error` before anything touches the disk.
 * 2. Create the parent directories of a file path.
 * 3. Set `journal_mode = WAL` (files only), `synchronous` per durability,
 *    `foreign_keys = ON` and `busy_timeout = 5000`.
 * 4. Refuse a database whose `user_version` is newer than the newest migration.
 * 5. Apply each migration newer than `user_version`, in order, each in its own
 *    transaction together with `PRAGMA user_version = N`; a failed migration
 *    leaves the schema at the previous version.
 *
 * @throws StoreOpenError when steps 2–5 fail; the connection is closed first.
 */
export function openDatabase(options: DatabaseOptions): SqliteDatabase {
  const { path, durability, migrations } = options;
  checkMigrations(migrations);
  let db: SqliteDatabase | undefined;
  try {
    if (path !== memoryPath) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path);
    if (path !== memoryPath) db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`);
    db.pragma("foreign_keys = ON");
    db.pragma("busy_timeout = 5000");
    migrate(db, migrations);
    return db;
  } catch (error) {
    db?.close();
    throw new StoreOpenError(path, error);
  }
}

function checkMigrations(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const [index, { version }] of migrations.entries()) {
    if (!Number.isInteger(version) || version <= previous || (index === 0 && version !== 1)) {
      const rule = index === 0 ? "be 1" : `be an integer greater than ${previous}`;
      throw new Error(`migrations[${index}].version must ${rule}, got ${version}`);
    }
    previous = version;
  }
}

function migrate(db: SqliteDatabase, migrations: readonly Migration[]): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  const newest = migrations.at(-1)?.version ?? 0;
  if (current > newest) {
    throw new Error(
      `database schema version ${current} is newer than this server understands (${newest}); upgrade the server`,
    );
  }
  for (const migration of migrations) {
    if (migration.version <= current) continue;
    db.transaction(() => {
      migration.up(db);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
}

/**
 * A read-only connection to `db`'s file: it sees committed data only, so
 * reads through it are not affected by a stepped write holding a
 * transaction open on `db` between event-loop turns (see
 * `GroupCommitter.writeInSteps`). Undefined for an in-memory database, which
 * no other connection can open. Close it before `db`.
 *
 * @throws StoreOpenError when the file cannot be opened
 */
export function openReader(db: SqliteDatabase): SqliteDatabase | undefined {
  if (db.memory) return undefined;
  try {
    const reader = new Database(db.name, { readonly: true, fileMustExist: true });
    reader.pragma("busy_timeout = 5000");
    return reader;
  } catch (error) {
    throw new StoreOpenError(db.name, error);
  }
}

/**
 * Checkpoints the WAL into the main file and truncates it (so a copied
 * database file is complete on its own), then closes the connection. Safe to
 * call on a closed connection.
 */
export function closeDatabase(db: SqliteDatabase): void {
  if (!db.open) return;
  try {
    if (db.pragma("journal_mode", { simple: true }) === "wal") db.pragma("wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
}

/** Whether the connection answers `SELECT 1`; false on any error, a closed connection included. Used by `/readyz`. */
export function pingDatabase(db: SqliteDatabase): boolean {
  try {
    db.prepare("SELECT 1").get();
    return true;
  } catch {
    return false;
  }
}
