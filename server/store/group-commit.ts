import { UnavailableError } from "../core/errors.js";
import type { SqliteDatabase } from "./database.js";
import { WalSync, type CommitSync } from "./wal-sync.js";

/** What one committed batch cost; feeds the commit metrics. */
export interface CommitStats {
  /** Writes in the batch, including ops that threw and were rolled back. */
  readonly batchSize: number;
  /** Wall time from BEGIN to the end of COMMIT (for a stepped write, the turns between its steps too). */
  readonly seconds: number;
}

/** Tuning and instrumentation for a {@link GroupCommitter}. */
export interface GroupCommitOptions {
  /** Most writes in one transaction; the rest wait for the next batch. Default 1000. */
  readonly maxBatch?: number;
  /**
   * Most total weight in one transaction (see `write`'s `weight`), so one
   * commit's ops never hold the event loop for long: a bulk write weighs
   * its row count. The first write of a batch always runs, whatever its
   * weight. Default 1000.
   */
  readonly maxBatchWeight?: number;
  /**
   * Called once per committed batch, after every caller of the batch was
   * answered. Must not throw: an exception escapes `flush()` (or the
   * scheduled flush, where it is uncaught).
   */
  readonly onCommit?: (stats: CommitStats) => void;
  /**
   * Checkpoint the WAL (off-loop durability only, see {@link WalSync}) after
   * this many batches, or after the first batch once `checkpointIntervalMs`
   * passed since the last checkpoint. Defaults 1000 and 1000 ms.
   */
  readonly checkpointEveryBatches?: number;
  readonly checkpointIntervalMs?: number;
  /**
   * Off-loop durability; default `WalSync.attach(db)` (undefined, i.e.
   * SQLite syncs inside COMMIT or not at all, unless the database is a WAL
   * file with durability `full`). Tests pass a fake.
   */
  readonly commitSync?: CommitSync;
}

/**
 * An fsync of the database failed. Linux may have dropped the dirty pages,
 * so nothing written since can be trusted to be durable: every later write
 * fails with this error until the server restarts (and SQLite recovers from
 * its WAL). Maps to UNAVAILABLE.
 */
export class StoreSyncFailedError extends UnavailableError {
  constructor(cause: unknown) {
    super(
      `the database could not be synced to disk (${cause instanceof Error ? cause.message : String(cause)}); writes are refused until the server restarts`,
    );
  }
}

/**
 * The committer was closed (the server is shutting down); the write was not
 * attempted. Maps to UNAVAILABLE so clients retry elsewhere.
 */
export class StoreClosedError extends UnavailableError {
  constructor() {
    super("the store is closed; the server is shutting down");
  }
}

/**
 * A queued write. Methods are declared in method syntax so that a
 * `QueuedWrite` built for any result type fits the queue's `unknown`.
 */
interface QueuedWrite {
  /** The op; a stepped write's op returns its steps (see `writeInSteps`). */
  op(db: SqliteDatabase): unknown;
  stepped: boolean;
  onCommitted?(result: unknown): void;
  resolve(result: unknown): void;
  reject(error: unknown): void;
  result: unknown;
  /** Its share of `maxBatchWeight`. */
  weight: number;
  /** Already rejected: its op or its onCommitted threw. */
  failed: boolean;
}

/** A stepped write in progress (see `GroupCommitter.writeInSteps`). */
interface SteppedBatch {
  readonly write: QueuedWrite;
  readonly steps: Iterator<unknown, unknown, undefined>;
  /** When its transaction began. */
  readonly start: bigint;
  /** The scheduled next step. */
  next: NodeJS.Immediate | undefined;
}

/**
 * Group commit: many writers share one transaction and so one fsync.
 *
 * Invariants:
 * - The first write into an empty queue schedules a flush with
 *   `setImmediate`, so every write arriving in the same event-loop turn (and
 *   while a commit blocked the loop) joins the next batch. A batch holds at
 *   most `maxBatch` writes and at most `maxBatchWeight` of weight (but at
 *   least one write); what is left is scheduled again.
 * - A batch is `BEGIN IMMEDIATE`, then each op inside its own `SAVEPOINT`,
 *   then `COMMIT`. An op that throws is rolled back to its savepoint and
 *   rejects only its own caller; the others still commit.
 * - If BEGIN or COMMIT fails, the transaction is rolled back (if open) and
 *   every caller of the batch is rejected with that error. So is every caller
 *   when an op's error made SQLite abandon the whole transaction.
 * - After COMMIT returned, every `onCommitted(result)` runs synchronously in
 *   queue order, then the promises resolve. Callers update in-memory state
 *   and notify watchers in `onCommitted`, so notification order is commit
 *   order. An `onCommitted` that throws rejects only its own caller.
 * - Batches never nest or interleave: a `flush()` requested while a batch is
 *   running (from an op or an `onCommitted`) does nothing, and writes queued
 *   meanwhile land in a later batch.
 * - A stepped write ({@link GroupCommitter.writeInSteps}) is a batch of its
 *   own. Its transaction stays open between its steps, while the event loop
 *   serves other calls; later writes queue behind it as behind any batch.
 *   After {@link GroupCommitter.close} its remaining steps run at once.
 * - Durability `full` on a file (see {@link WalSync}): COMMIT does not
 *   fsync; instead a committed batch waits for an fsync of the WAL that
 *   started after its COMMIT, run on libuv's thread pool, and only then do
 *   its promises resolve (`onCommitted` already ran). At most one fsync is
 *   in flight; a scheduled batch waits for it, so writes arriving during an
 *   fsync form the next batch — the classic group commit, with the event
 *   loop free to read requests meanwhile. Every few batches (or every
 *   second) a checkpoint starts after an fsync, in the checkpoint worker,
 *   while writes go on. A failed fsync or checkpoint rejects the writes it
 *   covered and every later write ({@link StoreSyncFailedError}).
 *
 * The committer does not own the connection: close the database after
 * {@link GroupCommitter.close}.
 */
export class GroupCommitter {
  private readonly maxBatch: number;
  private readonly maxBatchWeight: number;
  private readonly onCommit: ((stats: CommitStats) => void) | undefined;
  private readonly beginStmt;
  private readonly commitStmt;
  private readonly rollbackStmt;
  private readonly savepointStmt;
  private readonly releaseStmt;
  private readonly rollbackToStmt;
  private readonly rollbackListeners = new Set<(error: unknown) => void>();
  private queue: QueuedWrite[] = [];
  /** The stepped write whose transaction is open, between two of its steps. */
  private stepping: SteppedBatch | undefined;
  private scheduled: NodeJS.Immediate | undefined;
  private running = false;
  private closed = false;
  private readonly walSync: CommitSync | undefined;
  private readonly checkpointEveryBatches: number;
  private readonly checkpointIntervalMs: number;
  /** Committed writes waiting for the next WAL fsync. */
  private awaitingSync: QueuedWrite[] = [];
  /** A WAL fsync is in flight. */
  private syncing = false;
  /** The committed writes the in-flight fsync covers. */
  private syncCovered: readonly QueuedWrite[] = [];
  /** close() synced and answered every committed write, those of an fsync in flight included. */
  private syncedOnClose = false;
  /** A checkpoint is running (in the checkpoint worker; writes go on). */
  private checkpointing = false;
  private batchesSinceCheckpoint = 0;
  private lastCheckpointMs = Date.now();
  private syncFailure: StoreSyncFailedError | undefined;

  /**
   * @param db the connection every batch runs on; nothing else may write on it
   * @throws RangeError when `maxBatch` is not a positive integer
   */
  constructor(
    private readonly db: SqliteDatabase,
    options: GroupCommitOptions = {},
  ) {
    const {
      maxBatch = 1000,
      maxBatchWeight = 1000,
      onCommit,
      checkpointEveryBatches = 1000,
      checkpointIntervalMs = 1000,
      commitSync,
    } = options;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    }
    if (!(maxBatchWeight > 0)) throw new RangeError(`maxBatchWeight must be positive, got ${maxBatchWeight}`);
    this.maxBatch = maxBatch;
    this.maxBatchWeight = maxBatchWeight;
    this.onCommit = onCommit;
    this.beginStmt = db.prepare("BEGIN IMMEDIATE");
    this.commitStmt = db.prepare("COMMIT");
    this.rollbackStmt = db.prepare("ROLLBACK");
    // Savepoints nest, so one name serves every op.
    this.savepointStmt = db.prepare("SAVEPOINT group_commit_op");
    this.releaseStmt = db.prepare("RELEASE group_commit_op");
    this.rollbackToStmt = db.prepare("ROLLBACK TO group_commit_op");
    this.checkpointEveryBatches = checkpointEveryBatches;
    this.checkpointIntervalMs = checkpointIntervalMs;
    this.walSync = commitSync ?? WalSync.attach(db);
  }

  /** The failed fsync that stopped all writes, if one did; readiness reports it. */
  get failure(): Error | undefined {
    return this.syncFailure;
  }

  /**
   * Registers `listener` to run after a whole batch was rolled back (BEGIN or
   * COMMIT failed, or an op's error ended the transaction). Stores that apply
   * changes to in-memory state inside their ops reload that state from the
   * database here, since the batch's changes never became durable.
   *
   * @returns the idempotent unsubscribe function
   */
  onRollback(listener: (error: unknown) => void): () => void {
    this.rollbackListeners.add(listener);
    return () => this.rollbackListeners.delete(listener);
  }

  /** Writes queued and not yet run. */
  get pending(): number {
    return this.queue.length;
  }

  /**
   * Queues `op`; ops queued before the batch runs share one transaction.
   *
   * @param op runs synchronously inside the batch's transaction, in its own
   *   savepoint; its return value is the write's result
   * @param onCommitted runs right after COMMIT, before any later batch, in
   *   queue order; the place to update in-memory state and notify watchers
   * @returns the op's result, only after COMMIT returned and `onCommitted`
   *   ran; rejects with the op's error, the `onCommitted` error, the batch's
   *   BEGIN/COMMIT error, or {@link StoreClosedError} after {@link close}
   * @param weight the write's share of `maxBatchWeight`, e.g. its row count; default 1
   */
  write<T>(op: (db: SqliteDatabase) => T, onCommitted?: (result: T) => void, weight = 1): Promise<T> {
    return this.enqueue(op, false, onCommitted, weight);
  }

  /**
   * Like {@link write}, for a write too large to run in one event-loop turn
   * (a 1,000-span ingest holds the loop ~5 ms): `op` returns an iterator
   * whose `next()` does one step's share of the work, and the committer
   * returns to the event loop between steps, leaving the transaction open.
   * The write is a batch of its own; its result is the iterator's return
   * value, and it commits or fails as a whole, like any write.
   *
   * Other statements on the connection see the open transaction between
   * steps. So everything the op changes must be read through another
   * connection, which sees committed data only (see `openReader`); changes
   * whose readers use this one (a revision log append, say) belong in the
   * last step, which COMMIT follows in the same turn.
   */
  writeInSteps<T>(op: (db: SqliteDatabase) => Iterator<unknown, T, undefined>, onCommitted?: (result: T) => void): Promise<T> {
    return this.enqueue(op, true, onCommitted, 1);
  }

  /** Queues a write of either kind, unless the committer is closed or failed. */
  private enqueue<T>(op: (db: SqliteDatabase) => unknown, stepped: boolean, onCommitted: ((result: T) => void) | undefined, weight: number): Promise<T> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    if (this.syncFailure !== undefined) return Promise.reject(this.syncFailure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, stepped, onCommitted, resolve, reject, result: undefined, weight, failed: false });
      this.schedule();
    });
  }

  /**
   * Runs the next batch now, synchronously; the rest of the queue stays
   * scheduled. A stepped write only runs its first step here (all of them
   * once closed).
   */
  flush(): void {
    if (this.running || this.queue.length === 0) return;
    clearImmediate(this.scheduled);
    this.scheduled = undefined;
    let count = 0;
    let weight = 0;
    while (count < this.queue.length && count < this.maxBatch) {
      const next = this.queue[count]!;
      if (next.stepped) {
        if (count === 0) count = 1;
        break;
      }
      weight += next.weight;
      if (count > 0 && weight > this.maxBatchWeight) break;
      count++;
    }
    const batch = this.queue.splice(0, count);
    if (this.queue.length > 0) this.schedule();
    this.running = true;
    if (batch[0]!.stepped) {
      this.beginSteps(batch[0]!);
      return;
    }
    try {
      this.commit(batch);
    } finally {
      this.running = false;
    }
  }

  /**
   * Commits everything queued, then rejects later writes with
   * {@link StoreClosedError}. Called from within a batch, the queued writes
   * are committed by their scheduled flush instead.
   */
  close(): void {
    this.closed = true;
    // Between two steps of a stepped write: run the rest now (during a step, its loop does).
    if (this.stepping !== undefined) this.step(this.stepping);
    while (!this.running && this.queue.length > 0) this.flush();
    if (this.walSync === undefined || this.running) return;
    // Those of an fsync still in flight too: this sync covers them, and the
    // late one cannot undo their answer (a settled promise stays settled).
    const waiting = [...this.syncCovered, ...this.awaitingSync.splice(0)];
    try {
      if (waiting.length > 0) this.walSync.syncNow();
      for (const write of waiting) write.resolve(write.result);
      this.syncedOnClose = true;
    } catch (error) {
      for (const write of waiting) write.reject(new StoreSyncFailedError(error));
    }
    this.walSync.release();
  }

  private schedule(): void {
    this.scheduled ??= setImmediate(this.scheduledFlush);
  }

  private readonly scheduledFlush = (): void => {
    this.scheduled = undefined;
    // During an fsync the queue grows into the next batch; see afterSync.
    if (!this.syncing) this.flush();
  };

  /** Starts an fsync covering every committed write waiting for one, unless one is in flight. */
  private startSync(walSync: CommitSync): void {
    if (this.syncing || this.awaitingSync.length === 0) return;
    this.syncing = true;
    const covered = this.awaitingSync;
    this.syncCovered = covered;
    this.awaitingSync = [];
    walSync.sync().then(
      () => {
        for (const write of covered) write.resolve(write.result);
        this.afterSync(walSync);
      },
      (error: unknown) => {
        // After close() synced and answered these writes itself, a late failure is moot.
        if (!this.syncedOnClose) this.failSync(error, covered);
        this.afterSync(walSync);
      },
    );
  }

  /** After an fsync: checkpoint when due, then sync or commit what waited meanwhile. */
  private afterSync(walSync: CommitSync): void {
    this.syncing = false;
    this.syncCovered = [];
    if (this.closed) return;
    const due =
      this.batchesSinceCheckpoint >= this.checkpointEveryBatches ||
      (this.batchesSinceCheckpoint > 0 && Date.now() - this.lastCheckpointMs >= this.checkpointIntervalMs);
    if (due && this.syncFailure === undefined && !this.checkpointing) {
      this.checkpointing = true;
      this.batchesSinceCheckpoint = 0;
      this.lastCheckpointMs = Date.now();
      walSync
        .checkpoint()
        .catch((error: unknown) => this.failSync(error, []))
        .finally(() => {
          this.checkpointing = false;
        });
    }
    this.continueAfterSync(walSync);
  }

  /**
   * Syncs what was committed during the fsync, or schedules the next batch:
   * scheduled, not run at once, so that callers just answered (whose next
   * writes are still in microtasks) join it.
   */
  private continueAfterSync(walSync: CommitSync): void {
    if (this.awaitingSync.length > 0) this.startSync(walSync);
    else this.schedule();
  }

  /** Rejects `covered` and, from now on, every write: see {@link StoreSyncFailedError}. */
  private failSync(error: unknown, covered: readonly QueuedWrite[]): void {
    this.syncFailure ??= new StoreSyncFailedError(error);
    for (const write of covered) write.reject(this.syncFailure);
    for (const write of this.queue.splice(0)) write.reject(this.syncFailure);
  }

  private commit(batch: QueuedWrite[]): void {
    const start = process.hrtime.bigint();
    try {
      this.beginStmt.run();
      for (const write of batch) this.runOp(write);
      this.commitStmt.run();
    } catch (error) {
      this.abandon(batch, error);
      return;
    }
    this.committed(batch, start);
  }

  /** Rolls back a batch whose transaction failed as a whole and rejects every write of it. */
  private abandon(batch: readonly QueuedWrite[], error: unknown): void {
    try {
      if (this.db.inTransaction) this.rollbackStmt.run();
    } finally {
      for (const write of batch) write.reject(error);
      for (const listener of this.rollbackListeners) {
        try {
          listener(error);
        } catch {
          // A listener that cannot recover must not strand the next batch.
        }
      }
    }
  }

  /** After COMMIT: `onCommitted` in order, then the answers (after the next fsync, if off-loop). */
  private committed(batch: readonly QueuedWrite[], start: bigint): void {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    for (const write of batch) {
      if (write.failed || write.onCommitted === undefined) continue;
      try {
        write.onCommitted(write.result);
      } catch (error) {
        write.failed = true;
        write.reject(error);
      }
    }
    if (this.walSync === undefined) {
      for (const write of batch) if (!write.failed) write.resolve(write.result);
    } else {
      for (const write of batch) if (!write.failed) this.awaitingSync.push(write);
      this.batchesSinceCheckpoint++;
      this.startSync(this.walSync);
    }
    this.onCommit?.({ batchSize: batch.length, seconds });
  }

  /** Opens a stepped write's transaction and runs its first step. */
  private beginSteps(write: QueuedWrite): void {
    const start = process.hrtime.bigint();
    let steps: Iterator<unknown, unknown, undefined>;
    try {
      this.beginStmt.run();
      this.savepointStmt.run();
      steps = write.op(this.db) as Iterator<unknown, unknown, undefined>;
    } catch (error) {
      this.abandon([write], error);
      this.endSteps();
      return;
    }
    this.step({ write, steps, start, next: undefined });
  }

  /**
   * Runs the stepped write's next step, then schedules the one after it; or
   * its last step, then commits. Once closed, runs every step left at once.
   */
  private step(batch: SteppedBatch): void {
    clearImmediate(batch.next);
    batch.next = undefined;
    // Only set between steps: close() during a step (or after the last) leaves it alone.
    this.stepping = undefined;
    const { write } = batch;
    let done = false;
    try {
      do {
        const next = batch.steps.next();
        if (next.done === true) {
          write.result = next.value;
          done = true;
        }
      } while (!done && this.closed);
    } catch (error) {
      write.failed = true;
      write.reject(error);
      done = true;
      try {
        // As in runOp: an error that ended the transaction fails the batch.
        if (!this.db.inTransaction) throw error;
        this.rollbackToStmt.run();
      } catch (fatal) {
        this.abandon([write], fatal);
        this.endSteps();
        return;
      }
    }
    if (!done) {
      this.stepping = batch;
      batch.next = setImmediate(() => this.step(batch));
      return;
    }
    try {
      // A sync failure while the steps ran stops this write too (see StoreSyncFailedError).
      if (this.syncFailure !== undefined) throw this.syncFailure;
      this.releaseStmt.run();
      this.commitStmt.run();
    } catch (error) {
      this.abandon([write], error);
      this.endSteps();
      return;
    }
    try {
      this.committed([write], batch.start);
    } finally {
      this.endSteps();
    }
  }

  /** The stepped write is over: later batches may run. */
  private endSteps(): void {
    this.stepping = undefined;
    this.running = false;
    if (this.queue.length > 0) this.schedule();
  }

  private runOp(write: QueuedWrite): void {
    this.savepointStmt.run();
    try {
      write.result = write.op(this.db);
    } catch (error) {
      write.failed = true;
      write.reject(error);
      // Some errors (SQLITE_FULL, SQLITE_IOERR, ...) end the whole transaction;
      // then the batch fails with this error.
      if (!this.db.inTransaction) throw error;
      this.rollbackToStmt.run();
    }
    this.releaseStmt.run();
  }
}
