import { closeSync, fsync, fsyncSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Worker } from "node:worker_threads";
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
  /** Checkpoints the WAL off the event loop; writes may go on meanwhile. */
  checkpoint(): Promise<void>;
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
 * 2. With OFF, this connection's own checkpoints would copy frames into
 *    the database file without syncing it, then mark them backfilled, which
 *    lets the next write restart the WAL over them. So its automatic
 *    checkpoints are off (`wal_autocheckpoint = 0`), and {@link checkpoint}
 *    runs PASSIVE checkpoints on a second connection, in a worker thread,
 *    with `synchronous = NORMAL`: SQLite then syncs the WAL before copying
 *    and the database file after, and records the frames as backfilled
 *    only after that sync. A writer restarts the WAL only once every frame
 *    is backfilled, so only over frames durable in the database file; and
 *    the event loop never runs (or waits for) a checkpoint.
 * 3. The WAL file's directory entry is made durable once, with the first
 *    sync (the WAL file is created by the first write).
 * 4. {@link release} puts back `synchronous = FULL` and automatic
 *    checkpoints, so the connection is safe for whatever runs after (the
 *    final TRUNCATE checkpoint on close syncs as FULL does).
 * 5. The WAL descriptor is closed only once no fsync on it is in flight: a
 *    descriptor closed under a pending fsync fails it (EBADF), or worse,
 *    syncs whatever file reuses the number.
 */
export class WalSync implements CommitSync {
  private walFd: number | undefined;
  private worker: CheckpointWorker | undefined;
  private released = false;
  /** Fsyncs of {@link sync} not finished yet (invariant 5). */
  private syncsInFlight = 0;

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
    if (fd === undefined) return;
    this.syncsInFlight++;
    try {
      await fsyncAsync(fd);
    } finally {
      this.syncsInFlight--;
      if (this.released && this.syncsInFlight === 0) this.closeWal();
    }
  }

  /** {@link sync}, blocking: for shutdown, when nothing else needs the loop. */
  syncNow(): void {
    const fd = this.wal();
    if (fd !== undefined) fsyncSync(fd);
  }

  /**
   * Copies the WAL's committed frames into the database file and syncs it,
   * on the worker's connection (invariant 2). PASSIVE: it never waits for
   * or blocks the writer. Call it one at a time.
   *
   * @returns resolves when the checkpoint finished; rejects with its error
   */
  checkpoint(): Promise<void> {
    this.worker ??= new CheckpointWorker(this.path);
    return this.worker.checkpoint();
  }

  /**
   * Restores FULL syncing and automatic checkpoints, and closes the WAL
   * descriptor, at once or, when an fsync is in flight, as it ends. Idempotent.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.db.open) {
      this.db.pragma("synchronous = FULL");
      this.db.pragma(`wal_autocheckpoint = ${defaultAutoCheckpointPages}`);
    }
    if (this.syncsInFlight === 0) this.closeWal();
    this.worker?.close();
    this.worker = undefined;
  }

  private closeWal(): void {
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

/**
 * The worker thread's code: its own better-sqlite3 connection to the
 * database, checkpointing on request. Evaluated from a string (CommonJS), so
 * it runs the same from the compiled server and from TypeScript tests.
 */
const checkpointWorkerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.sqliteModule);
const db = new Database(workerData.path);
db.pragma("synchronous = NORMAL");
db.pragma("busy_timeout = 5000");
parentPort.on("message", () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
    parentPort.postMessage({ ok: true });
  } catch (error) {
    parentPort.postMessage({ ok: false, error: String(error && error.message) });
  }
});
`;

/** A worker thread that runs checkpoints of one database, one at a time. */
class CheckpointWorker {
  private readonly worker: Worker;
  private pending: { resolve(): void; reject(error: Error): void } | undefined;

  constructor(path: string) {
    const sqliteModule = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(checkpointWorkerSource, { eval: true, workerData: { path, sqliteModule } });
    this.worker.unref();
    this.worker.on("message", (message: { ok: boolean; error?: string }) => {
      const pending = this.pending;
      this.pending = undefined;
      if (message.ok) pending?.resolve();
      else pending?.reject(new Error(`checkpoint failed: ${message.error ?? "unknown error"}`));
    });
    this.worker.on("error", (error) => {
      this.pending?.reject(error);
      this.pending = undefined;
    });
  }

  checkpoint(): Promise<void> {
    if (this.pending !== undefined) return Promise.reject(new Error("a checkpoint is already running"));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage("checkpoint");
    });
  }

  close(): void {
    void this.worker.terminate();
  }
}
