/**
 * The per-span ingest decisions the store applies: duplicate, trace full,
 * trace expired, or ingested. Pure: the store supplies what it knows of the
 * stored traces through an {@link IngestLookup} and the time as `nowMs`.
 *
 * Use inside the write transaction: the store opens its transaction, calls
 * {@link planIngestBatch} with a lookup that reads through that same
 * transaction, then inserts `plan.accepted` and writes `plan.traces`. Since
 * nothing else writes in between, the decisions still hold when it commits.
 * The plan keeps no reference to the lookup.
 *
 * Order of rules for one span:
 * 1. same (trace_id, span_id) as a stored span, or one earlier in the same
 *    batch → duplicate (a retried export is idempotent even when the trace
 *    has since become full or expired);
 * 2. the trace was first seen more than `traceTtlMs` ago → dropped,
 *    `trace_expired`;
 * 3. the trace already holds `maxSpansPerTrace` spans → dropped, `trace_full`;
 * 4. otherwise ingested; a trace not seen before is first seen `nowMs`.
 */
import type { CollectorLimits, Span } from "./model.js";

/** What the ingest rules read of a span: its identity. */
export type SpanKey = Pick<Span, "traceId" | "spanId">;

/** What the store keeps per trace for the ingest rules. */
export interface TraceIngestState {
  /** Spans stored for the trace. */
  readonly spanCount: number;
  /** When the trace's first span was ingested (epoch ms). */
  readonly firstSeenMs: number;
}

/** The store's view of what is stored, read inside the write transaction. */
export interface IngestLookup {
  /** The trace's state, or undefined when no span of it is stored. */
  trace(traceId: string): TraceIngestState | undefined;
  /** Whether a span with this (trace_id, span_id) is stored. */
  hasSpan(traceId: string, spanId: string): boolean;
}

/** Why a span was not ingested although it is new. */
export type IngestRejection = "trace_full" | "trace_expired";

/** The decision for one span. */
export type IngestDecision =
  | {
      readonly outcome: "ingested";
      /** The trace's state with this span counted. */
      readonly trace: TraceIngestState;
    }
  | { readonly outcome: "duplicate" }
  | {
      readonly outcome: "dropped";
      readonly reason: IngestRejection;
      /** For the caller, e.g. `trace … is full: it holds the maximum of 500 spans`. */
      readonly message: string;
    };

/** The seed's `ingest_batch` result. */
export interface IngestCounts {
  readonly ingested: number;
  /** Rejected as `trace_full` or `trace_expired`. */
  readonly dropped: number;
  readonly duplicates: number;
}

/** What a batch does, for the store to persist in the same transaction. */
export interface IngestBatchPlan<S extends SpanKey> {
  /** One decision per input span, in input order. */
  readonly decisions: readonly IngestDecision[];
  /** The spans to insert, in input order. */
  readonly accepted: readonly S[];
  /** The new state of every trace that gained spans (insert or update). */
  readonly traces: ReadonlyMap<string, TraceIngestState>;
  readonly counts: IngestCounts;
}

/**
 * Whether a trace is expired at `nowMs`: first seen more than `traceTtlMs`
 * ago. A trace exactly `traceTtlMs` old is not.
 */
export function isTraceExpired(state: TraceIngestState, nowMs: number, limits: CollectorLimits): boolean {
  return nowMs - state.firstSeenMs > limits.traceTtlMs;
}

/**
 * The first-seen time below which traces are expired at `nowMs`, for the
 * pruning query (`first_seen_ms < cutoff`); agrees with {@link isTraceExpired}.
 */
export function expiryCutoffMs(nowMs: number, limits: CollectorLimits): number {
  return nowMs - limits.traceTtlMs;
}

/**
 * Decides one span given its trace's stored state (rules 1–4 of the module
 * comment).
 *
 * @param trace the trace's state, undefined when the trace is new
 * @param duplicate whether (trace_id, span_id) is stored already
 */
export function decideIngest(
  span: SpanKey,
  trace: TraceIngestState | undefined,
  duplicate: boolean,
  nowMs: number,
  limits: CollectorLimits,
): IngestDecision {
  if (duplicate) return { outcome: "duplicate" };
  if (trace === undefined) return { outcome: "ingested", trace: { spanCount: 1, firstSeenMs: nowMs } };
  if (isTraceExpired(trace, nowMs, limits)) {
    return {
      outcome: "dropped",
      reason: "trace_expired",
      message: `trace ${span.traceId} has expired: first seen ${nowMs - trace.firstSeenMs} ms ago, over the ${limits.traceTtlMs} ms TTL`,
    };
  }
  if (trace.spanCount >= limits.maxSpansPerTrace) {
    return {
      outcome: "dropped",
      reason: "trace_full",
      message: `trace ${span.traceId} is full: it holds the maximum of ${limits.maxSpansPerTrace} spans`,
    };
  }
  return { outcome: "ingested", trace: { spanCount: trace.spanCount + 1, firstSeenMs: trace.firstSeenMs } };
}

/**
 * Decides every span of a batch in input order, each seeing the spans
 * accepted before it in the same batch (they count towards the trace's
 * size and make a repeat a duplicate).
 */
export function planIngestBatch<S extends SpanKey>(
  spans: readonly S[],
  lookup: IngestLookup,
  nowMs: number,
  limits: CollectorLimits,
): IngestBatchPlan<S> {
  const traces = new Map<string, TraceIngestState>();
  /** Per trace, the span ids accepted earlier in this batch. */
  const acceptedIds = new Map<string, Set<string>>();
  const decisions: IngestDecision[] = [];
  const accepted: S[] = [];
  let dropped = 0;
  let duplicates = 0;
  for (const span of spans) {
    const batchIds = acceptedIds.get(span.traceId);
    const duplicate = batchIds?.has(span.spanId) === true || lookup.hasSpan(span.traceId, span.spanId);
    const state = traces.get(span.traceId) ?? lookup.trace(span.traceId);
    const decision = decideIngest(span, state, duplicate, nowMs, limits);
    decisions.push(decision);
    switch (decision.outcome) {
      case "ingested":
        accepted.push(span);
        traces.set(span.traceId, decision.trace);
        if (batchIds === undefined) acceptedIds.set(span.traceId, new Set([span.spanId]));
        else batchIds.add(span.spanId);
        break;
      case "duplicate":
        duplicates++;
        break;
      case "dropped":
        dropped++;
        break;
    }
  }
  return { decisions, accepted, traces, counts: { ingested: accepted.length, dropped, duplicates } };
}
