import { closeSync, fsync, fsyncSync, openSync } from "node:fs";
import { dirname } from "node:path";
import type { SqliteDatabase } from "./database.js";

/** `PRAGMA synchronous` value of FULL. */
const synchronousFull = 2;
/** SQLite's default `wal_autocheckpoint`, restored on release. */
const defaultAutoCheckpointPages = 1000;

function fsyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (error) => (error === null ? resolve() : reject(error))));
}

/**
 * What the group committer needs to make commits durable off the event loop;
 * {@link WalSync} implements it (tests substitute a controllable fake).
 */
export interface CommitSync {
  /** Flushes everything committed so far to stable storage. */
  sync(): Promise<void>;
  /** {@link sync}, blocking (shutdown). */
  syncNow(): void;
  /** Checkpoints the WAL and syncs the database file; no write may begin until it resolves. */
  checkpoint(): Promise<void>;
  /** The database-file sync of {@link checkpoint}, blocking (shutdown). */
  syncDatabaseNow(): void;
  /** Hands syncing back to SQLite. Idempotent. */
  release(): void;
}

/**
 * Makes commits of a WAL database durable *off the event loop*: SQLite's
 * `synchronous = FULL` fsyncs the WAL inside COMMIT, blocking the loop for
 * the whole fsync (milliseconds on this machine's disk), so no request can
 * be read and no other batch can form meanwhile. Here the connection runs
 * with `synchronous = OFF` and the group committer calls {@link sync}, an
 * `fsync` of the WAL file on libuv's thread pool, before acknowledging a
 * batch. Durability is the same as FULL's: an acknowledged commit's WAL
 * frames are on stable storage.
 *
 * Invariants (why OFF is safe here):
 * 1. A commit is acknowledged only after an fsync of the WAL file that
 *    started after its COMMIT returned (the caller's duty: see
 *    `GroupCommitter`). fsync flushes the file, whichever descriptor asks.
 * 2. With OFF, SQLite would checkpoint without syncing the database file and
 *    could then restart the WAL over frames whose pages are not yet durable
 *    in the database file. So automatic checkpoints are off
 *    (`wal_autocheckpoint = 0`) and {@link checkpoint} copies the frames
 *    (PASSIVE) and fsyncs the database file; the caller starts no write
 *    until it resolved, so the WAL is only restarted over frames that are
 *    durable in the database file.
 * 3. The WAL file's directory entry is made durable once, with the first
 *    sync (the WAL file is created by the first write).
 * 4. {@link release} puts back `synchronous = FULL` and automatic
 *    checkpoints, so the connection is safe for whatever runs after (the
 *    final TRUNCATE checkpoint on close syncs as FULL does).
 */
export class WalSync implements CommitSync {
  private walFd: number | undefined;
  private released = false;

  private constructor(
    private readonly db: SqliteDatabase,
    private readonly path: string,
  ) {
    db.pragma("synchronous = OFF");
    db.pragma("wal_autocheckpoint = 0");
  }

  /**
   * Takes over syncing for `db` when it is a file in WAL mode with
   * `synchronous = FULL` (durability `full`); otherwise returns undefined
   * and changes nothing (`:memory:`, or durability `normal`, where SQLite
   * never fsyncs on COMMIT anyway).
   */
  static attach(db: SqliteDatabase): WalSync | undefined {
    if (db.memory || db.name === "" || db.pragma("journal_mode", { simple: true }) !== "wal") return undefined;
    if (db.pragma("synchronous", { simple: true }) !== synchronousFull) return undefined;
    return new WalSync(db, db.name);
  }

  /**
   * Flushes everything committed so far to stable storage.
   *
   * @returns resolves when the WAL file's fsync completed; rejects with its error
   */
  async sync(): Promise<void> {
    const fd = this.wal();
    if (fd !== undefined) await fsyncAsync(fd);
  }

  /** {@link sync}, blocking: for shutdown, when nothing else needs the loop. */
  syncNow(): void {
    const fd = this.wal();
    if (fd !== undefined) fsyncSync(fd);
  }

  /**
   * Copies the WAL's frames into the database file (PASSIVE: never waits)
   * and fsyncs the database file. Start no write until it resolves
   * (invariant 2).
   */
  async checkpoint(): Promise<void> {
    this.db.pragma("wal_checkpoint(PASSIVE)");
    const fd = openSync(this.path, "r");
    try {
      await fsyncAsync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** The database file's fsync of {@link checkpoint}, blocking: for shutdown. */
  syncDatabaseNow(): void {
    const fd = openSync(this.path, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Restores FULL syncing and automatic checkpoints, and closes the WAL descriptor. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.db.open) {
      this.db.pragma("synchronous = FULL");
      this.db.pragma(`wal_autocheckpoint = ${defaultAutoCheckpointPages}`);
    }
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }

  /**
   * The WAL file's descriptor, opened (and its directory entry synced) on
   * first use; undefined while there is no WAL file, i.e. nothing was
   * written since the database was opened, so there is nothing to sync.
   */
  private wal(): number | undefined {
    if (this.walFd === undefined) {
      try {
        this.walFd = openSync(`${this.path}-wal`, "r");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw error;
      }
      const dir = openSync(dirname(this.path), "r");
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
    return this.walFd;
  }
}
