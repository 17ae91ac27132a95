import {
  anomalyEventOf,
  anomalyRules,
  anomalyTransition,
  detectAnomaly,
  type AnomalyEvent,
  type AnomalyRules,
} from "../core/tracing/anomalies.js";
import type { ServiceCallCount } from "../core/tracing/dependency-graph.js";
import type { IngestCounts, IngestDecision, IngestLookup, TraceIngestState } from "../core/tracing/ingest-rules.js";
import { planIngestBatch } from "../core/tracing/ingest-rules.js";
import { durationNs, isErrorStatus, msToNs, nsToMs, type CollectorLimits, type Span } from "../core/tracing/model.js";
import { byStartThenId, compareBigint, compareText } from "../core/tracing/ordering.js";
import type { SqliteDatabase } from "./database.js";
import type { GroupCommitter } from "./group-commit.js";
import { RevisionLog, revisionLogSchema, type RevisionedChange } from "./revision-log.js";
import { anomalyEventCodec, attrsOf, kindCode, spanFromRow, statusCode, type IngestSpan, type SpanRow } from "./tracing-codec.js";
import { tracingQueries } from "./tracing-queries.js";

/**
 * SQL of the tracing tables, for migration 2.
 *
 * Chosen for write volume: SQLite's cost per span is the B-tree pages an
 * insert dirties, and random 128-bit trace ids scatter them. So:
 *
 * - `traces` maps each trace_id to an integer `trace_key` handed out in
 *   first-seen order (the rowid) and holds everything kept per trace in one
 *   small row: ingest state (first_seen_ms, span_count), the summary the
 *   anomaly listing reads (min/max times, duration, error count) and the
 *   root's identity. Its `UNIQUE (trace_id)` index is the only one keyed by
 *   the random id, and it gets one entry per trace, not per span.
 * - `spans` is a rowid table (appends go to the right edge) keyed for trace
 *   lookup by `spans_by_trace (trace_key, span_id)`: since trace keys grow
 *   with first-seen time and spans arrive for recent traces, inserts land near
 *   the index's right edge instead of all over it. The same index answers
 *   duplicate checks, `getSpan`, and every per-trace read as one range, so an
 *   analysis of one trace reads only that trace's entries.
 * - `spans_by_service (service, start_ns, duration_ns)` serves per-service
 *   time-range scans and percentile/SLO queries as an index-only scan (the
 *   duration is in the index). Its inserts are clustered too: few services,
 *   and start times grow, so each service appends at the end of its range.
 * - `traces_by_duration` lets `anomalousCandidates` walk traces slowest first
 *   and stop at the threshold or the limit; `traces_by_first_seen` lets
 *   pruning find expired traces oldest first; `traces_without_root` is a
 *   partial index holding only traces that have no root yet, for
 *   `incompleteTraceIds`. All three are per trace, not per span.
 *
 * Times are int64 nanoseconds since the epoch (good until 2262).
 */
export const tracingSchema = `
CREATE TABLE traces (
  trace_key INTEGER PRIMARY KEY,
  trace_id TEXT NOT NULL UNIQUE,
  first_seen_ms INTEGER NOT NULL,
  span_count INTEGER NOT NULL,
  error_count INTEGER NOT NULL,
  min_start_ns INTEGER NOT NULL,
  max_end_ns INTEGER NOT NULL,
  duration_ns INTEGER NOT NULL,
  root_span_id TEXT,
  root_service TEXT,
  root_operation TEXT,
  root_start_ns INTEGER
);
CREATE INDEX traces_by_duration ON traces (duration_ns);
CREATE INDEX traces_by_first_seen ON traces (first_seen_ms);
CREATE INDEX traces_without_root ON traces (trace_key) WHERE root_span_id IS NULL;
CREATE TABLE spans (
  trace_key INTEGER NOT NULL,
  span_id TEXT NOT NULL,
  parent_span_id TEXT,
  service TEXT NOT NULL,
  operation TEXT NOT NULL,
  kind INTEGER NOT NULL,
  status INTEGER NOT NULL,
  start_ns INTEGER NOT NULL,
  end_ns INTEGER NOT NULL,
  duration_ns INTEGER NOT NULL,
  attrs TEXT
);
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_key, span_id);
CREATE INDEX spans_by_service ON spans (service, start_ns, duration_ns);
`;

/** The revision-log stream of anomaly events (the WatchAnomalies history). */
export const anomalyStream = "trace_anomalies";

/** SQL of the anomaly revision log, for migration 3. */
export const anomalyLogSchema = revisionLogSchema(anomalyStream);

/** Options for {@link TracingStore}. */
export interface TracingStoreOptions {
  /** Spans per trace and TTL for the ingest rules; thresholds for anomaly events. */
  readonly limits: CollectorLimits;
  /**
   * Most durations {@link TracingStore.serviceDurationsMs} returns (the most
   * recent by start time), so a percentile query's memory is bounded however
   * busy the service. Default 100,000 (800 KB of numbers).
   */
  readonly maxDurationSamples?: number;
  /**
   * A read-only connection to the same file (`openReader`). Reads then go
   * through it and see committed data only, which lets large writes (an
   * ingest of more than {@link rowsPerStep} spans, pruning) run in steps,
   * leaving the event loop free between them. Without it (an in-memory
   * database) reads use the writer's connection and every write runs at once.
   */
  readonly reader?: SqliteDatabase;
}

/**
 * Rows (spans, and the rows of their traces) an ingest writes per step when
 * it runs in steps (~0.8 ms of the event loop each, measured); an ingest of
 * more spans than this runs in steps. Planning, which reads every trace and
 * span the batch touches (~1 ms per 1,000 spans), is one step of its own.
 */
export const rowsPerStep = 250;
/** Spans pruning deletes per step, likewise (a trace's spans are never split). */
const prunedSpansPerStep = 1000;

/** The root span's identity, as kept in a trace's row. */
export interface TraceRootInfo {
  readonly spanId: string;
  readonly serviceName: string;
  readonly operationName: string;
  readonly startTimeNs: bigint;
}

/**
 * What the store keeps per trace: one `traces` row. Everything here is
 * maintained on ingest, so reading it never touches the trace's spans.
 */
export interface TraceRecord {
  readonly traceId: string;
  /** When the trace's first span was ingested (epoch ms). */
  readonly firstSeenMs: number;
  readonly spanCount: number;
  /** Spans whose status is ERROR or TIMEOUT. */
  readonly errorCount: number;
  readonly minStartNs: bigint;
  readonly maxEndNs: bigint;
  /** `maxEndNs − minStartNs`. */
  readonly totalDurationNs: bigint;
  /** {@link TraceRecord.totalDurationNs} floored to ms. */
  readonly totalDurationMs: number;
  /** The root as `findRoot` picks it (earliest start, then smallest span_id); absent while there is none. */
  readonly root?: TraceRootInfo;
}

/** The result of {@link TracingStore.ingestBatch}. */
export interface IngestBatchResult {
  readonly counts: IngestCounts;
  /** One per input span, in input order. */
  readonly decisions: readonly IngestDecision[];
}


/** A `traces` row with its key, as read inside a write (safe integers). */
interface TraceState {
  key: number;
  traceId: string;
  firstSeenMs: number;
  spanCount: number;
  errorCount: number;
  minStartNs: bigint;
  maxEndNs: bigint;
  root: TraceRootInfo | undefined;
}

interface TraceRow {
  trace_key: bigint;
  trace_id: string;
  first_seen_ms: bigint;
  span_count: bigint;
  error_count: bigint;
  min_start_ns: bigint;
  max_end_ns: bigint;
  root_span_id: string | null;
  root_service: string | null;
  root_operation: string | null;
  root_start_ns: bigint | null;
}

/**
 * The trace collector's persistence: spans and per-trace rows in SQLite (see
 * {@link tracingSchema}).
 *
 * Writes go through the group committer, so many ingest calls share one
 * transaction and one fsync, and a call is answered only after its spans
 * are durable. An ingest op, inside the transaction:
 * 1. plans the batch with the core `planIngestBatch`, whose lookup reads the
 *    traces and spans through the same open transaction (so earlier ops of
 *    the same group commit are seen, and nothing else writes in between);
 * 2. inserts the row of each new trace (getting its key), then the accepted
 *    spans, then updates the rows of traces that already existed.
 * After COMMIT, {@link TracingStore.onAnomalies} listeners get the anomaly
 * changes, in commit order.
 *
 * Reads see committed data only: through the reader connection when there
 * is one, which lets an ingest of more than {@link rowsPerStep} spans and
 * pruning run in steps (`GroupCommitter.writeInSteps`) that hold the event
 * loop about a millisecond each; otherwise on the writer's connection
 * between batches, every write at once. The store keeps no state in
 * memory, so a rolled-back batch needs no reload.
 */
export class TracingStore {
  private readonly limits: CollectorLimits;
  private readonly maxDurationSamples: number;
  private readonly rules: AnomalyRules;
  private readonly spanTotals = { ingested: 0, duplicates: 0, dropped: 0 };
  private prunedTotal = 0;
  private readonly listeners = new Set<(change: RevisionedChange<AnomalyEvent>) => void>();
  /**
   * The durable history of anomaly events, appended in the transaction that
   * ingested the spans which caused them: the WatchAnomalies source.
   */
  readonly anomalyLog: RevisionLog<AnomalyEvent>;
  /** Writes may run in steps: reads go through a separate connection. */
  private readonly stepsAllowed: boolean;
  private readonly traceByIdStmt;
  private readonly readTraceStmt;
  private readonly hasSpanStmt;
  private readonly insertTraceStmt;
  private readonly updateTraceStmt;
  private readonly insertSpanStmt;
  private readonly spansOfTraceStmt;
  private readonly spanStmt;
  private readonly childrenStmt;
  private readonly durationsStmt;
  private readonly incompleteStmt;
  private readonly anomalousStmt;
  private readonly expiredStmt;
  private readonly deleteSpansStmt;
  private readonly deleteTraceStmt;
  private readonly dependencyStmt;
  private readonly serviceNamesStmt;

  /**
   * @param db the connection with migration 2 applied
   * @param committer the group committer writing on `db`
   * @throws RangeError when `maxDurationSamples` is not a positive integer
   */
  constructor(
    db: SqliteDatabase,
    private readonly committer: GroupCommitter,
    options: TracingStoreOptions,
  ) {
    const { limits, maxDurationSamples = 100_000, reader = db } = options;
    if (!Number.isInteger(maxDurationSamples) || maxDurationSamples < 1) {
      throw new RangeError(`maxDurationSamples must be a positive integer, got ${maxDurationSamples}`);
    }
    this.limits = limits;
    this.rules = anomalyRules(limits);
    this.anomalyLog = new RevisionLog(db, anomalyStream, anomalyEventCodec, reader);
    committer.onRollback(() => this.anomalyLog.reload());
    this.maxDurationSamples = maxDurationSamples;
    this.stepsAllowed = reader !== db;
    const q = tracingQueries;
    // Inside writes, on the writer's connection:
    this.traceByIdStmt = db.prepare(q.traceById).safeIntegers(true);
    this.hasSpanStmt = db.prepare(q.hasSpan).pluck();
    this.insertTraceStmt = db.prepare(q.insertTrace);
    this.updateTraceStmt = db.prepare(q.updateTrace);
    this.insertSpanStmt = db.prepare(q.insertSpan);
    this.expiredStmt = db.prepare(q.expiredTraces).safeIntegers(true).raw(true);
    this.deleteSpansStmt = db.prepare(q.deleteSpans);
    this.deleteTraceStmt = db.prepare(q.deleteTrace);
    // Reads, on the reader:
    this.readTraceStmt = reader.prepare(q.traceById).safeIntegers(true);
    this.spansOfTraceStmt = reader.prepare(q.spansOfTrace).safeIntegers(true).raw(true);
    this.spanStmt = reader.prepare(q.span).safeIntegers(true).raw(true);
    this.childrenStmt = reader.prepare(q.children).safeIntegers(true).raw(true);
    this.durationsStmt = reader.prepare(q.serviceDurations).pluck().safeIntegers(true);
    this.incompleteStmt = reader.prepare(q.incompleteTraces).pluck();
    this.anomalousStmt = reader.prepare(q.anomalousTraces).safeIntegers(true);
    this.dependencyStmt = reader.prepare(q.dependencyCalls);
    this.serviceNamesStmt = reader.prepare(q.serviceNames).pluck();
  }

  /**
   * Subscribes to committed anomaly changes (one per ingest transaction that
   * produced anomaly events), delivered after COMMIT in commit order.
   *
   * @returns the idempotent unsubscribe function
   */
  onAnomalies(listener: (change: RevisionedChange<AnomalyEvent>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Ingests validated spans in one transaction (the seed's `ingest_batch`),
   * deciding each with the core ingest rules: duplicates (against stored
   * spans and earlier spans of the batch) are skipped, spans of full or
   * expired traces dropped. A trace that becomes anomalous, or whose anomaly
   * gets worse, gets an event in the anomaly log in the same transaction.
   *
   * @param nowMs the collector's clock; a new trace is first seen then
   * @returns the counts and one decision per span, once the accepted spans
   *   are durable
   */
  ingestBatch(spans: readonly IngestSpan[], nowMs: number): Promise<IngestBatchResult> {
    return this.write(
      () => this.applyBatch(spans, nowMs),
      ({ counts, anomalies }) => {
        this.spanTotals.ingested += counts.ingested;
        this.spanTotals.duplicates += counts.duplicates;
        this.spanTotals.dropped += counts.dropped;
        if (anomalies === undefined) return;
        for (const listener of this.listeners) listener(anomalies);
      },
      spans.length,
      spans.length > rowsPerStep,
    ).then(({ counts, decisions }) => ({ counts, decisions }));
  }

  /**
   * Ingests one validated span (the seed's `ingest`).
   *
   * @returns its decision: `ingested`, `duplicate`, or `dropped` with the
   *   reason (`trace_full`, `trace_expired`) and a message for the caller
   */
  async ingest(span: Span, nowMs: number): Promise<IngestDecision> {
    const { decisions } = await this.ingestBatch([span], nowMs);
    return decisions[0]!;
  }

  /** Committed spans by ingest outcome since the store was opened. */
  get spanCounts(): Readonly<IngestCounts> {
    return { ...this.spanTotals };
  }

  /** Traces removed by {@link pruneExpired} since the store was opened. */
  get prunedTraces(): number {
    return this.prunedTotal;
  }

  /** The trace's row, or undefined when no span of it is stored. */
  traceRecord(traceId: string): TraceRecord | undefined {
    const row = this.readTraceStmt.get(traceId) as TraceRow | undefined;
    return row === undefined ? undefined : toRecord(toState(row));
  }

  /**
   * Every stored span of a trace, in span_id order (one range read of
   * `spans_by_trace`); empty when the trace is unknown.
   */
  traceSpans(traceId: string): Span[] {
    return (this.spansOfTraceStmt.all(traceId) as SpanRow[]).map((row) => spanFromRow(traceId, row));
  }

  /** One span by (trace_id, span_id), or undefined. */
  getSpan(traceId: string, spanId: string): Span | undefined {
    const row = this.spanStmt.get(traceId, spanId) as SpanRow | undefined;
    return row === undefined ? undefined : spanFromRow(traceId, row);
  }

  /**
   * The spans whose parent is `parentSpanId`, ordered by start time, then
   * span_id. Reads only the trace's range of `spans_by_trace`.
   */
  children(traceId: string, parentSpanId: string): Span[] {
    return (this.childrenStmt.all(traceId, parentSpanId) as SpanRow[])
      .map((row) => spanFromRow(traceId, row))
      .sort(byStartThenId);
  }

  /**
   * A service's span durations in exact (fractional) milliseconds, for
   * percentiles and SLO reports; floor them for the seed's integer
   * `duration_ms`. An index-only scan of `spans_by_service`.
   *
   * Memory is bounded: at most `maxDurationSamples` values, the spans that
   * started most recently, are returned.
   *
   * @param since only spans starting at or after this instant; default all
   */
  serviceDurationsMs(serviceName: string, since?: SinceBound): number[] {
    const durations = this.durationsStmt.all(serviceName, sinceBoundNs(since), this.maxDurationSamples) as bigint[];
    return durations.map((ns) => Number(ns) / 1e6);
  }

  /**
   * Traces that have spans but no root yet, oldest first (a scan of the
   * partial index `traces_without_root`).
   */
  incompleteTraceIds(limit: number): string[] {
    return this.incompleteStmt.all(limit) as string[];
  }

  /**
   * Traces whose total duration is over `thresholdMs`, slowest first, then
   * by trace_id: read from `traces_by_duration`, never from spans.
   */
  anomalousCandidates(thresholdMs: number, limit: number): TraceRecord[] {
    return (this.anomalousStmt.all(msToNs(thresholdMs), limit) as TraceRow[]).map((row) => toRecord(toState(row)));
  }

  /**
   * Removes traces first seen more than `ttlMs` before `nowMs`, with their
   * spans, oldest first. Each transaction removes at most `batchLimit`
   * traces (so at most `batchLimit × maxSpansPerTrace` spans) and goes
   * through the group committer, so ingest writes queued meanwhile commit
   * between two pruning batches instead of waiting for the whole pass.
   *
   * @param batchLimit traces per transaction, default 200
   *
   * @returns how many traces were removed
   * @throws RangeError when `batchLimit` is not a positive integer
   */
  async pruneExpired(nowMs: number, ttlMs: number, batchLimit = 200): Promise<number> {
    if (!Number.isInteger(batchLimit) || batchLimit < 1) {
      throw new RangeError(`batchLimit must be a positive integer, got ${batchLimit}`);
    }
    const cutoff = nowMs - ttlMs;
    let removed = 0;
    for (;;) {
      const count = await this.write(() => this.removeExpired(cutoff, batchLimit), undefined, batchLimit, true);
      removed += count;
      this.prunedTotal += count;
      if (count < batchLimit) return removed;
    }
  }

  /** Deletes up to `limit` traces first seen before `cutoffMs`, oldest first, with their spans; yields between steps. */
  private *removeExpired(cutoffMs: number, limit: number): Generator<void, number> {
    const expired = this.expiredStmt.all(cutoffMs, limit) as [key: bigint, spanCount: bigint][];
    let spansSinceStep = 0;
    for (const [key, spanCount] of expired) {
      if (spansSinceStep >= prunedSpansPerStep) {
        spansSinceStep = 0;
        yield;
      }
      this.deleteSpansStmt.run(key);
      this.deleteTraceStmt.run(key);
      spansSinceStep += Number(spanCount);
    }
    return expired.length;
  }

  /**
   * Runs a write given as steps: in steps when `large` and reads do not use
   * the writer's connection, otherwise all at once in a shared batch.
   */
  private write<T>(
    steps: () => Iterator<unknown, T, undefined>,
    onCommitted: ((result: T) => void) | undefined,
    weight: number,
    large: boolean,
  ): Promise<T> {
    if (large && this.stepsAllowed) return this.committer.writeInSteps(steps, onCommitted);
    return this.committer.write(() => lastValue(steps()), onCommitted, weight);
  }

  /** Trims the anomaly log to the retention rule; returns the number of changes removed. */
  compactAnomalies(keepChanges: number, keepAgeMs: number, nowMs: number): Promise<number> {
    return this.committer.write(() => this.anomalyLog.compact({ keepChanges, keepAgeMs }, nowMs));
  }

  /** Every service with stored spans, ascending (one index seek per service). */
  serviceNames(): string[] {
    return this.serviceNamesStmt.all() as string[];
  }

  /**
   * Calls into each of `services` from another service, counted from
   * parent→child span pairs of the same trace whose child started at or
   * after `since` (Jaeger's dependency counting). Each service is one
   * `spans_by_service` range plus one `spans_by_trace` lookup per span.
   * Ordered by parent service, then child service.
   */
  dependencyEdges(services: readonly string[], since?: SinceBound): ServiceCallCount[] {
    const sinceNs = sinceBoundNs(since);
    const edges: ServiceCallCount[] = [];
    for (const service of new Set(services)) {
      edges.push(...(this.dependencyStmt.all(service, sinceNs) as ServiceCallCount[]));
    }
    return edges.sort(
      (a, b) => compareText(a.parentService, b.parentService) || compareText(a.childService, b.childService),
    );
  }

  /** An ingest op: plans the batch, then writes it, yielding after planning and every {@link rowsPerStep} rows. */
  private *applyBatch(spans: readonly IngestSpan[], nowMs: number): Generator<void, AppliedBatch> {
    /** Trace rows read or created in this op, null when unknown. */
    const states = new Map<string, TraceState | null>();
    const load = (traceId: string): TraceState | null => {
      let state = states.get(traceId);
      if (state === undefined) {
        const row = this.traceByIdStmt.get(traceId) as TraceRow | undefined;
        state = row === undefined ? null : toState(row);
        states.set(traceId, state);
      }
      return state;
    };
    const lookup: IngestLookup = {
      trace: (traceId): TraceIngestState | undefined => load(traceId) ?? undefined,
      hasSpan: (traceId, spanId) => {
        const state = load(traceId);
        return state !== null && this.hasSpanStmt.get(state.key, spanId) !== undefined;
      },
    };
    const plan = planIngestBatch(spans, lookup, nowMs, this.limits);

    // Group the accepted spans by trace, fold them into the trace's state.
    const byTrace = new Map<string, IngestSpan[]>();
    for (const span of plan.accepted) {
      const group = byTrace.get(span.traceId);
      if (group === undefined) byTrace.set(span.traceId, [span]);
      else group.push(span);
    }
    yield; // Planning read every trace and span the batch touches.
    const anomalyEvents: AnomalyEvent[] = [];
    let rowsSinceStep = 0;
    for (const [traceId, group] of byTrace) {
      const existing = states.get(traceId) ?? null;
      const before = existing === null ? undefined : detectAnomaly(toRecord(existing), this.rules);
      const first = group[0]!;
      const state: TraceState = existing ?? {
        key: 0,
        traceId,
        firstSeenMs: nowMs,
        spanCount: 0,
        errorCount: 0,
        minStartNs: first.startTimeNs,
        maxEndNs: first.endTimeNs,
        root: undefined,
      };
      for (const span of group) {
        if (isErrorStatus(span.status)) state.errorCount++;
        if (span.startTimeNs < state.minStartNs) state.minStartNs = span.startTimeNs;
        if (span.endTimeNs > state.maxEndNs) state.maxEndNs = span.endTimeNs;
        if (span.parentSpanId === undefined && isEarlierRoot(span, state.root)) {
          state.root = {
            spanId: span.spanId,
            serviceName: span.serviceName,
            operationName: span.operationName,
            startTimeNs: span.startTimeNs,
          };
        }
      }
      state.spanCount = plan.traces.get(traceId)!.spanCount;
      const root = state.root;
      const rootColumns = [
        root?.spanId ?? null,
        root?.serviceName ?? null,
        root?.operationName ?? null,
        root?.startTimeNs ?? null,
      ];
      const duration = state.maxEndNs - state.minStartNs;
      if (existing === null) {
        const { lastInsertRowid } = this.insertTraceStmt.run(
          traceId, nowMs, state.spanCount, state.errorCount, state.minStartNs, state.maxEndNs, duration, ...rootColumns,
        );
        state.key = Number(lastInsertRowid);
        states.set(traceId, state);
      } else {
        this.updateTraceStmt.run(
          state.spanCount, state.errorCount, state.minStartNs, state.maxEndNs, duration, ...rootColumns, state.key,
        );
      }
      rowsSinceStep++;
      for (const span of group) {
        if (rowsSinceStep >= rowsPerStep) {
          rowsSinceStep = 0;
          yield;
        }
        rowsSinceStep++;
        this.insertSpanStmt.run(
          state.key,
          span.spanId,
          span.parentSpanId ?? null,
          span.serviceName,
          span.operationName,
          kindCode(span.kind),
          statusCode(span.status),
          span.startTimeNs,
          span.endTimeNs,
          attrsOf(span),
          durationNs(span),
        );
      }
      const event = anomalyEventOf(anomalyTransition(before, detectAnomaly(toRecord(state), this.rules)), nowMs);
      if (event !== undefined) anomalyEvents.push(event);
    }
    const anomalies =
      anomalyEvents.length === 0
        ? undefined
        : { revision: this.anomalyLog.append(anomalyEvents, nowMs), events: anomalyEvents };
    return { counts: plan.counts, decisions: plan.decisions, anomalies };
  }
}

/** What an ingest op gives its caller, and the anomalies to notify after COMMIT. */
interface AppliedBatch extends IngestBatchResult {
  readonly anomalies: RevisionedChange<AnomalyEvent> | undefined;
}

/** Runs an iterator to its end; its return value. */
function lastValue<T>(iterator: Iterator<unknown, T, undefined>): T {
  for (;;) {
    const next = iterator.next();
    if (next.done === true) return next.value;
  }
}

/**
 * A lower bound on span start times: epoch milliseconds as a number, or
 * exact epoch nanoseconds as a bigint (an API Timestamp, so that a bound
 * inside a millisecond is not rounded to it).
 */
export type SinceBound = number | bigint;

/** A {@link SinceBound} in epoch ns; no bound is the smallest int64. */
function sinceBoundNs(since: SinceBound | undefined): bigint {
  if (since === undefined) return -(2n ** 63n);
  return typeof since === "bigint" ? since : msToNs(since);
}

/** Whether root candidate `span` precedes the current root by `findRoot`'s rule. */
function isEarlierRoot(span: IngestSpan, root: TraceRootInfo | undefined): boolean {
  if (root === undefined) return true;
  return (compareBigint(span.startTimeNs, root.startTimeNs) || compareText(span.spanId, root.spanId)) < 0;
}

function toState(row: TraceRow): TraceState {
  return {
    key: Number(row.trace_key),
    traceId: row.trace_id,
    firstSeenMs: Number(row.first_seen_ms),
    spanCount: Number(row.span_count),
    errorCount: Number(row.error_count),
    minStartNs: row.min_start_ns,
    maxEndNs: row.max_end_ns,
    root:
      row.root_span_id === null
        ? undefined
        : {
            spanId: row.root_span_id,
            serviceName: row.root_service ?? "",
            operationName: row.root_operation ?? "",
            startTimeNs: row.root_start_ns ?? 0n,
          },
  };
}

function toRecord(state: TraceState): TraceRecord {
  const totalDurationNs = state.maxEndNs - state.minStartNs;
  return {
    traceId: state.traceId,
    firstSeenMs: state.firstSeenMs,
    spanCount: state.spanCount,
    errorCount: state.errorCount,
    minStartNs: state.minStartNs,
    maxEndNs: state.maxEndNs,
    totalDurationNs,
    totalDurationMs: nsToMs(totalDurationNs),
    ...(state.root !== undefined ? { root: state.root } : {}),
  };
}
