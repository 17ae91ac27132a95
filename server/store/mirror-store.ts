import { emptyDiffTally, tallyResults, type DiffTally, type FieldTally } from "../core/mirror/analysis.js";
import {
  emptyMirrorStats,
  planEnqueue,
  statsAfterEnqueue,
  statsAfterRemoval,
  statsAfterResults,
  type MirrorStats,
} from "../core/mirror/buffer-rules.js";
import { selectMirrors } from "../core/mirror/decision.js";
import { checkAddMirror, requireMirror, withEnabled } from "../core/mirror/lifecycle.js";
import type { EncodedCapture, MirrorConfig, MirroredRequest, MirrorLimits, MirrorResult } from "../core/mirror/model.js";
import { redactRequest } from "../core/mirror/redaction.js";
import type { SqliteDatabase } from "./database.js";
import { CoalescedWrites } from "./coalesced-writes.js";
import type { GroupCommitter } from "./group-commit.js";
import { RevisionLog, revisionLogSchema, type RevisionedChange, type RevisionLogCodec } from "./revision-log.js";

/**
 * Most captures sharing one committer write: enough to take the per-write
 * cost (savepoint, counters) off a stream's captures, few enough that one
 * write holds the event loop for about a millisecond.
 */
export const maxCapturesPerWrite = 64;

/** The revision-log stream of mirror configuration changes (the WatchMirrors history). */
export const mirrorConfigStream = "mirror_config";

/**
 * SQL of the mirror tables as migration 4 created them: `mirrors`, one
 * buffer row per (request, mirror) holding the request's JSON, and the
 * configuration revision log. Migration 6 ({@link mirrorSharedPayloadsSchema})
 * moved the requests into shared payload rows.
 */
export const mirrorSchema = `
CREATE TABLE mirrors (
  mirror_id TEXT PRIMARY KEY,
  config TEXT NOT NULL,
  captured INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0,
  dispatched INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  diffs INTEGER NOT NULL DEFAULT 0,
  tally TEXT
) WITHOUT ROWID;
CREATE TABLE mirror_buffer (
  seq INTEGER PRIMARY KEY,
  mirror_id TEXT NOT NULL,
  request TEXT NOT NULL
);
CREATE INDEX mirror_buffer_by_mirror ON mirror_buffer (mirror_id, seq);
${revisionLogSchema(mirrorConfigStream)}
`;

/**
 * SQL of migration 6: a captured request is stored once however many
 * mirrors queue it, and the buffers hold references to it.
 *
 * - `mirrors` (unchanged): one row per mirror: its config as JSON, its
 *   durable counters (`pending` is not stored: it is the number of buffer
 *   rows) and its diff tally as JSON, the input of AnalyzeDiffs.
 * - `mirror_payloads`: one row per distinct stored form of a capture (one
 *   per set of redacted headers among the mirrors that queued it), with
 *   `refs`, the number of buffer rows naming it.
 * - `mirror_buffer`: one row per (mirror, capture), keyed `(mirror_id, seq)`
 *   so a mirror's oldest requests are read first, as Drain and Dispatch do;
 *   `seq` grows with capture order and is shared by a capture's rows.
 * - a trigger releases a payload with its last buffer row, whichever
 *   statement deletes it.
 *
 * Existing buffer rows keep their seq and become one payload each.
 */
export const mirrorSharedPayloadsSchema = `
CREATE TABLE mirror_payloads (
  payload_id INTEGER PRIMARY KEY,
  request TEXT NOT NULL,
  refs INTEGER NOT NULL
);
CREATE TABLE mirror_queue (
  mirror_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  payload_id INTEGER NOT NULL,
  PRIMARY KEY (mirror_id, seq)
) WITHOUT ROWID;
INSERT INTO mirror_payloads (payload_id, request, refs) SELECT seq, request, 1 FROM mirror_buffer;
INSERT INTO mirror_queue (mirror_id, seq, payload_id) SELECT mirror_id, seq, seq FROM mirror_buffer;
DROP TABLE mirror_buffer;
ALTER TABLE mirror_queue RENAME TO mirror_buffer;
CREATE TRIGGER mirror_buffer_release AFTER DELETE ON mirror_buffer BEGIN
  DELETE FROM mirror_payloads WHERE payload_id = OLD.payload_id AND refs = 1;
  UPDATE mirror_payloads SET refs = refs - 1 WHERE payload_id = OLD.payload_id;
END;
`;

/** One mirror's configuration change, as WatchMirrors reports it. */
export interface MirrorEvent {
  readonly kind: "added" | "updated" | "removed";
  /** The new config; for `removed`, the last one. */
  readonly config: MirrorConfig;
}

/** What one capture did to one mirror. */
export interface MirrorCaptureCount {
  readonly mirrorId: string;
  readonly queued: number;
  readonly dropped: number;
}

/** A buffered request with its position in the buffer. */
export interface BufferedRequest {
  readonly seq: number;
  readonly request: MirroredRequest;
}

/** The outcome of a configuration write: its result and the revision of its change. */
export interface MirrorCommitted<R> {
  readonly result: R;
  readonly revision: number;
}

/** Options for {@link MirrorStore}. */
export interface MirrorStoreOptions {
  readonly limits: MirrorLimits;
  /** A read-only connection to the same file (`openReader`): watch catch-up reads go through it. */
  readonly reader?: SqliteDatabase;
  /** Clock in epoch milliseconds; default Date.now. */
  readonly now?: () => number;
}

interface MirrorRow {
  mirror_id: string;
  config: string;
  captured: number;
  dropped: number;
  dispatched: number;
  failed: number;
  diffs: number;
  tally: string | null;
}

/**
 * The mirror service's persistence: configs, counters and diff tallies in
 * memory and in SQLite, buffers in SQLite only, and the configuration
 * revision log.
 *
 * Invariants:
 * 1. Every write is one group-committed op that updates SQLite and then,
 *    inside the same op once every statement succeeded, the in-memory maps
 *    (an op that fails is rolled back to its savepoint with memory
 *    untouched); a rolled-back batch reloads memory from the database, so
 *    the two never disagree after a commit.
 * 2. An acknowledged capture is durable: its buffer rows and counters
 *    commit before the caller is answered.
 * 3. `pending` of a mirror equals its number of buffer rows (loaded with a
 *    COUNT at start-up, kept in memory since).
 * 4. Configuration changes append a {@link MirrorEvent} change to the
 *    revision log in the op that makes them; listeners hear of it after
 *    COMMIT, in commit order.
 * 5. A payload's `refs` is the number of buffer rows naming it; it is
 *    deleted with the last of them (see {@link mirrorSharedPayloadsSchema}).
 */
export class MirrorStore {
  /** The durable configuration history, the source of WatchMirrors catch-up. */
  readonly log: RevisionLog<MirrorEvent>;
  private readonly limits: MirrorLimits;
  private readonly now: () => number;
  private configs = new Map<string, MirrorConfig>();
  private stats = new Map<string, MirrorStats>();
  private tallies = new Map<string, DiffTally>();
  /**
   * The last buffer seq handed out by this process. Seqs are assigned here,
   * never reused while the process runs (SQLite's default rowid would reuse
   * the seqs of deleted rows at the top): a Dispatch's batch, read before a
   * concurrent Drain emptied the buffer, must never name a later capture.
   */
  private lastSeq = 0;
  /** Captures share committer writes (see {@link capture}). */
  private readonly captures: CoalescedWrites<EncodedCapture, MirrorCaptureCount[]>;
  private readonly listeners = new Set<(change: RevisionedChange<MirrorEvent>) => void>();
  private readonly selectMirrorsStmt;
  private readonly pendingStmt;
  private readonly insertMirrorStmt;
  private readonly updateConfigStmt;
  private readonly deleteMirrorStmt;
  private readonly deleteBufferStmt;
  private readonly insertPayloadStmt;
  private readonly enqueueStmt;
  private readonly maxSeqStmt;
  private readonly countersStmt;
  private readonly oldestStmt;
  private readonly removeThroughStmt;
  private readonly removeOneStmt;
  private readonly resultsStmt;

  constructor(
    db: SqliteDatabase,
    private readonly committer: GroupCommitter,
    options: MirrorStoreOptions,
  ) {
    this.limits = options.limits;
    this.now = options.now ?? Date.now;
    this.log = new RevisionLog(db, mirrorConfigStream, eventCodec, options.reader);
    this.selectMirrorsStmt = db.prepare("SELECT * FROM mirrors");
    this.pendingStmt = db.prepare("SELECT mirror_id, count(*) AS pending FROM mirror_buffer GROUP BY mirror_id");
    this.insertMirrorStmt = db.prepare("INSERT INTO mirrors (mirror_id, config) VALUES (?, ?)");
    this.updateConfigStmt = db.prepare("UPDATE mirrors SET config = ? WHERE mirror_id = ?");
    this.deleteMirrorStmt = db.prepare("DELETE FROM mirrors WHERE mirror_id = ?");
    this.deleteBufferStmt = db.prepare("DELETE FROM mirror_buffer WHERE mirror_id = ?");
    this.insertPayloadStmt = db.prepare("INSERT INTO mirror_payloads (request, refs) VALUES (?, ?)");
    this.enqueueStmt = db.prepare("INSERT INTO mirror_buffer (mirror_id, seq, payload_id) VALUES (?, ?, ?)");
    this.maxSeqStmt = db.prepare("SELECT coalesce(max(seq), 0) AS seq FROM mirror_buffer");
    this.countersStmt = db.prepare("UPDATE mirrors SET captured = ?, dropped = ? WHERE mirror_id = ?");
    this.oldestStmt = db.prepare(
      `SELECT b.seq, p.request FROM mirror_buffer b JOIN mirror_payloads p USING (payload_id)
       WHERE b.mirror_id = ? ORDER BY b.seq LIMIT ?`,
    );
    this.removeThroughStmt = db.prepare("DELETE FROM mirror_buffer WHERE mirror_id = ? AND seq <= ?");
    this.removeOneStmt = db.prepare("DELETE FROM mirror_buffer WHERE mirror_id = ? AND seq = ?");
    this.resultsStmt = db.prepare(
      "UPDATE mirrors SET dispatched = ?, failed = ?, diffs = ?, tally = ? WHERE mirror_id = ?",
    );
    this.captures = new CoalescedWrites(committer, (requests) => this.writeCaptures(requests), maxCapturesPerWrite);
    this.reload();
    committer.onRollback(() => this.reload());
  }

  /** Subscribes to committed configuration changes, in commit order. */
  onChange(listener: (change: RevisionedChange<MirrorEvent>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every mirror, by mirror_id. */
  mirrors(): MirrorConfig[] {
    return [...this.configs.values()].sort((a, b) => (a.mirrorId < b.mirrorId ? -1 : a.mirrorId > b.mirrorId ? 1 : 0));
  }

  /** One mirror. @throws NotFoundError when unknown */
  mirror(mirrorId: string): MirrorConfig {
    return requireMirror(this.configs.get(mirrorId), mirrorId);
  }

  /** A mirror's counters. @throws NotFoundError when unknown */
  mirrorStats(mirrorId: string): MirrorStats {
    this.mirror(mirrorId);
    return this.stats.get(mirrorId) ?? emptyMirrorStats;
  }

  /** A mirror's running diff tally. @throws NotFoundError when unknown */
  tally(mirrorId: string): DiffTally {
    this.mirror(mirrorId);
    return this.tallies.get(mirrorId) ?? emptyDiffTally;
  }

  /** Buffered requests of one mirror, or of all. @throws NotFoundError for an unknown mirror */
  pendingCount(mirrorId?: string): number {
    if (mirrorId !== undefined) return this.mirrorStats(mirrorId).pending;
    let pending = 0;
    for (const stats of this.stats.values()) pending += stats.pending;
    return pending;
  }

  /**
   * Adds a validated mirror.
   *
   * @throws AlreadyExistsError, LimitExceededError (see `checkAddMirror`)
   */
  add(config: MirrorConfig): Promise<MirrorCommitted<MirrorConfig>> {
    return this.commitConfig(() => {
      checkAddMirror(this.configs, config.mirrorId, this.limits);
      this.insertMirrorStmt.run(config.mirrorId, JSON.stringify(config));
      const apply = (): void => {
        this.configs.set(config.mirrorId, config);
        this.stats.set(config.mirrorId, emptyMirrorStats);
      };
      return { result: config, event: { kind: "added", config }, apply };
    });
  }

  /** Removes a mirror with its buffer and counters. @throws NotFoundError */
  remove(mirrorId: string): Promise<MirrorCommitted<MirrorConfig>> {
    return this.commitConfig(() => {
      const config = this.mirror(mirrorId);
      this.deleteBufferStmt.run(mirrorId);
      this.deleteMirrorStmt.run(mirrorId);
      const apply = (): void => {
        this.configs.delete(mirrorId);
        this.stats.delete(mirrorId);
        this.tallies.delete(mirrorId);
      };
      return { result: config, event: { kind: "removed", config }, apply };
    });
  }

  /**
   * Enables or disables a mirror; no change (and revision 0) when it already
   * is. @throws NotFoundError
   */
  setEnabled(mirrorId: string, enabled: boolean): Promise<MirrorCommitted<MirrorConfig>> {
    return this.commitConfig(() => {
      const current = this.mirror(mirrorId);
      const config = withEnabled(current, enabled);
      if (config === current) return { result: config };
      this.updateConfigStmt.run(JSON.stringify(config), mirrorId);
      return { result: config, event: { kind: "updated", config }, apply: () => this.configs.set(mirrorId, config) };
    });
  }

  /**
   * Queues a validated capture, its payload encoded (see
   * `encodeCapturePayload`), into every applicable enabled mirror's buffer
   * (redacted per mirror); a full buffer drops and counts. Durable when the
   * promise resolves.
   *
   * Captures queued before the next commit share one write (up to
   * {@link maxCapturesPerWrite}; see `CoalescedWrites`): their counters are
   * written once, and any failure of that write (a disk error, which ends
   * the whole transaction anyway, or a bug in storing one of them) fails
   * each of them.
   *
   * @returns one count per applicable mirror, in selection order
   */
  capture(request: EncodedCapture): Promise<MirrorCaptureCount[]> {
    return this.captures.add(request);
  }

  /**
   * The oldest `limit` buffered requests of a mirror, left in the buffer
   * (Dispatch removes them with {@link recordResults} once sent). Reads
   * committed rows only. @throws NotFoundError
   */
  oldest(mirrorId: string, limit: number): BufferedRequest[] {
    this.mirror(mirrorId);
    return (this.oldestStmt.all(mirrorId, limit) as { seq: number; request: string }[]).map((row) => ({
      seq: row.seq,
      request: decodeRequest(row.request),
    }));
  }

  /** Hands out and removes a mirror's oldest `limit` requests (Drain). @throws NotFoundError */
  drain(mirrorId: string, limit: number): Promise<MirroredRequest[]> {
    return this.committer.write(() => {
      this.mirror(mirrorId);
      const rows = this.oldestStmt.all(mirrorId, limit) as { seq: number; request: string }[];
      if (rows.length > 0) {
        this.removeThroughStmt.run(mirrorId, rows[rows.length - 1]!.seq);
        this.stats.set(mirrorId, statsAfterRemoval(this.stats.get(mirrorId) ?? emptyMirrorStats, rows.length));
      }
      return rows.map((row) => decodeRequest(row.request));
    });
  }

  /**
   * Records dispatch results: removes the sent requests still buffered
   * (a concurrent Drain may have taken some), adds the results to the
   * counters and the diff tally. A mirror removed meanwhile records nothing,
   * even when a mirror with the same id was added since (told apart by
   * `created_at`).
   *
   * @param mirror the mirror as the dispatch read it
   */
  recordResults(mirror: MirrorConfig, sent: readonly BufferedRequest[], results: readonly MirrorResult[]): Promise<void> {
    const { mirrorId } = mirror;
    return this.committer.write(() => {
      if (this.configs.get(mirrorId)?.createdAtMs !== mirror.createdAtMs) return;
      let removed = 0;
      for (const { seq } of sent) removed += this.removeOneStmt.run(mirrorId, seq).changes;
      const stats = statsAfterResults(statsAfterRemoval(this.stats.get(mirrorId) ?? emptyMirrorStats, removed), results);
      const tally = tallyResults(results, this.tallies.get(mirrorId) ?? emptyDiffTally);
      this.resultsStmt.run(stats.dispatched, stats.failed, stats.diffs, encodeTally(tally), mirrorId);
      this.stats.set(mirrorId, stats);
      this.tallies.set(mirrorId, tally);
    });
  }

  /** Trims the configuration log to the retention rule; returns the number of changes removed. */
  compact(keepChanges: number, keepAgeMs: number): Promise<number> {
    return this.committer.write(() => this.log.compact({ keepChanges, keepAgeMs }, this.now()));
  }

  /**
   * Writes captures, in order, inside their shared committer op: each
   * capture's payloads (one per distinct redaction among the mirrors that
   * accept it) and buffer rows, then each touched mirror's counters once.
   * Memory changes only once every statement succeeded.
   *
   * @returns each capture's counts, in the order of `requests`
   */
  private writeCaptures(requests: readonly EncodedCapture[]): MirrorCaptureCount[][] {
    const next = new Map<string, MirrorStats>();
    const counts: MirrorCaptureCount[][] = [];
    let seq = this.lastSeq;
    for (const request of requests) {
      seq++;
      const own: MirrorCaptureCount[] = [];
      /** The mirrors that accepted the capture, by the redaction they apply. */
      const accepted = new Map<string, { redactHeaders: readonly string[]; mirrorIds: string[] }>();
      for (const config of selectMirrors(this.configs.values(), request)) {
        const stats = next.get(config.mirrorId) ?? this.stats.get(config.mirrorId) ?? emptyMirrorStats;
        const plan = planEnqueue(stats.pending, config.bufferSize);
        next.set(config.mirrorId, statsAfterEnqueue(stats, plan));
        own.push({ mirrorId: config.mirrorId, queued: plan.accepted, dropped: plan.dropped });
        if (plan.accepted === 0) continue;
        const redactionKey = config.redactHeaders.join("\n");
        const group = accepted.get(redactionKey);
        if (group === undefined) accepted.set(redactionKey, { redactHeaders: config.redactHeaders, mirrorIds: [config.mirrorId] });
        else group.mirrorIds.push(config.mirrorId);
      }
      for (const { redactHeaders, mirrorIds } of accepted.values()) {
        const text = encodeRequest(redactRequest(request, redactHeaders));
        const payloadId = this.insertPayloadStmt.run(text, mirrorIds.length).lastInsertRowid;
        for (const mirrorId of mirrorIds) this.enqueueStmt.run(mirrorId, seq, payloadId);
      }
      counts.push(own);
    }
    for (const [mirrorId, stats] of next) this.countersStmt.run(stats.captured, stats.dropped, mirrorId);
    this.lastSeq = seq;
    for (const [mirrorId, stats] of next) this.stats.set(mirrorId, stats);
    return counts;
  }

  /**
   * Runs a configuration write: `op` checks and writes the rows, the change
   * is logged, and only then does `apply` change memory, so an op that fails
   * anywhere (its savepoint is rolled back) leaves memory as it was.
   */
  private commitConfig<R>(op: () => { result: R; event?: MirrorEvent; apply?: () => void }): Promise<MirrorCommitted<R>> {
    return this.committer
      .write(
        () => {
          const { result, event, apply } = op();
          const revision = event === undefined ? 0 : this.log.append([event], this.now());
          apply?.();
          return { result, revision, event };
        },
        ({ revision, event }) => {
          if (event === undefined) return;
          const change = { revision, events: [event] };
          for (const listener of this.listeners) listener(change);
        },
      )
      .then(({ result, revision }) => ({ result, revision }));
  }

  /** Rebuilds memory and the revision counter from the database. */
  private reload(): void {
    const configs = new Map<string, MirrorConfig>();
    const stats = new Map<string, MirrorStats>();
    const tallies = new Map<string, DiffTally>();
    const pending = new Map(
      (this.pendingStmt.all() as { mirror_id: string; pending: number }[]).map((row) => [row.mirror_id, row.pending]),
    );
    for (const row of this.selectMirrorsStmt.all() as MirrorRow[]) {
      configs.set(row.mirror_id, JSON.parse(row.config) as MirrorConfig);
      stats.set(row.mirror_id, {
        captured: row.captured,
        dropped: row.dropped,
        pending: pending.get(row.mirror_id) ?? 0,
        dispatched: row.dispatched,
        failed: row.failed,
        diffs: row.diffs,
      });
      if (row.tally !== null) tallies.set(row.mirror_id, decodeTally(row.tally));
    }
    this.configs = configs;
    this.stats = stats;
    this.tallies = tallies;
    this.lastSeq = Math.max(this.lastSeq, (this.maxSeqStmt.get() as { seq: number }).seq);
    this.log.reload();
  }
}

const eventCodec: RevisionLogCodec<MirrorEvent> = {
  encode: (event) => Buffer.from(JSON.stringify(event)),
  decode: (bytes) => JSON.parse(Buffer.from(bytes).toString("utf8")) as MirrorEvent,
};

/**
 * A captured request as its payload row stores it: JSON, with the payload's
 * JSON spliced in as it is and the raw body as base64.
 */
function encodeRequest(request: EncodedCapture): string {
  const { rawBody, payloadJson, ...rest } = request;
  // `rest` always has fields (request_id is required), so its text is `{"…":…}`.
  const restJson = JSON.stringify(rawBody === undefined ? rest : { ...rest, rawBody: Buffer.from(rawBody).toString("base64") });
  return `{"payload":${payloadJson},${restJson.slice(1)}`;
}

function decodeRequest(text: string): MirroredRequest {
  const { rawBody, ...rest } = JSON.parse(text) as MirroredRequest & { rawBody?: string };
  return rawBody === undefined ? rest : { ...rest, rawBody: new Uint8Array(Buffer.from(rawBody, "base64")) };
}

/** A tally as JSON: its field map as entries. */
function encodeTally(tally: DiffTally): string {
  return JSON.stringify({ ...tally, fields: [...tally.fields] });
}

function decodeTally(text: string): DiffTally {
  const parsed = JSON.parse(text) as Omit<DiffTally, "fields"> & { fields: [string, FieldTally][] };
  return { ...parsed, fields: new Map(parsed.fields) };
}
