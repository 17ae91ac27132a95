/**
 * The trace collector's domain types. Every value is a plain, readonly object.
 *
 * Time: span times are nanoseconds since the Unix epoch as `bigint`, so no
 * precision is lost between OTLP (`fixed64 time_unix_nano`), SQLite (int64)
 * and the analyses; wall-clock times of the collector itself (`nowMs`,
 * `assembledAtMs`, first-seen times) are epoch milliseconds as `number`,
 * injected by the caller.
 *
 * Milliseconds: every `…Ms` quantity derived from span times is an integer,
 * the floor of the exact nanosecond quantity divided by 10^6 (see
 * {@link nsToMs}). Sums are taken in nanoseconds and floored once, never as
 * a sum of floors; the matching `…Ns` field carries the exact value.
 */

/** The role of a span in a call (OpenTelemetry's span kinds). */
export type SpanKind = "server" | "client" | "producer" | "consumer" | "internal";

/** Every {@link SpanKind}, in the API's enum order. */
export const spanKinds: readonly SpanKind[] = ["server", "client", "producer", "consumer", "internal"];

/** How a span ended. */
export type SpanStatus = "ok" | "error" | "timeout" | "cancelled";

/** Every {@link SpanStatus}, in the API's enum order. */
export const spanStatuses: readonly SpanStatus[] = ["ok", "error", "timeout", "cancelled"];

/** A timestamped event inside a span (an OTLP span event). */
export interface SpanLog {
  readonly timeNs: bigint;
  readonly fields: Readonly<Record<string, string>>;
}

/**
 * One span of a distributed trace, validated (see `validateSpanInput`).
 * Invariants: `spanId` is unique within its trace; `endTimeNs >= startTimeNs`;
 * `parentSpanId`, when set, differs from `spanId`.
 */
export interface Span {
  /** 16 lowercase hex digits, not all zero. */
  readonly spanId: string;
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** Absent on a root span. */
  readonly parentSpanId?: string;
  readonly serviceName: string;
  readonly operationName: string;
  readonly kind: SpanKind;
  readonly status: SpanStatus;
  readonly startTimeNs: bigint;
  readonly endTimeNs: bigint;
  readonly tags: Readonly<Record<string, string>>;
  readonly logs: readonly SpanLog[];
}

/** A span's duration in nanoseconds: `endTimeNs − startTimeNs`. */
export function durationNs(span: Pick<Span, "startTimeNs" | "endTimeNs">): bigint {
  return span.endTimeNs - span.startTimeNs;
}

/**
 * A span's `duration_ms` as the seed defines it: integer milliseconds, the
 * floor of `(end − start) / 10^6` (a 1.999 ms span lasts 1 ms).
 */
export function durationMs(span: Span): number {
  return nsToMs(durationNs(span));
}

/**
 * The `google.protobuf.Timestamp` parts of an instant in epoch nanoseconds:
 * whole seconds rounded toward −∞, and nanos in 0..999,999,999.
 */
export function timestampParts(ns: bigint): { seconds: bigint; nanos: number } {
  const seconds = ns >= 0n ? ns / nsPerSecond : -((-ns + nsPerSecond - 1n) / nsPerSecond);
  return { seconds, nanos: Number(ns - seconds * nsPerSecond) };
}

/** Nanoseconds in a second. */
export const nsPerSecond = 1_000_000_000n;

/**
 * Integer milliseconds of a non-negative nanosecond quantity, rounded down.
 * Every `…Ms` field of this module is computed with it.
 */
export function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}

/**
 * Nanoseconds of a millisecond quantity (thresholds, SLOs); a fractional
 * quantity is rounded to the nearest nanosecond.
 */
export function msToNs(ms: number): bigint {
  return Number.isInteger(ms) ? BigInt(ms) * 1_000_000n : BigInt(Math.round(ms * 1e6));
}

/** Whether a span counts as an error: ERROR and TIMEOUT do; OK and CANCELLED do not. */
export function isErrorStatus(status: SpanStatus): boolean {
  return status === "error" || status === "timeout";
}

/**
 * What can be said of a trace from its spans alone, with or without a root
 * yet: the store keeps it per trace for anomaly decisions and listings.
 */
export interface TraceSummary {
  readonly traceId: string;
  readonly spanCount: number;
  /** The root span (see `findRoot`), absent while the trace has none. */
  readonly root?: Span;
  /** `max(end) − min(start)` over all spans, root or not. */
  readonly totalDurationNs: bigint;
  /** {@link TraceSummary.totalDurationNs} as floored integer milliseconds. */
  readonly totalDurationMs: number;
  /** Distinct service names among the spans. */
  readonly serviceCount: number;
  /** Spans whose status is ERROR or TIMEOUT. */
  readonly errorCount: number;
}

/**
 * A trace assembled from its spans (the seed's `TraceTree`). Immutable; the
 * index maps are built once by `assembleTrace` and shared by the analyses.
 */
export interface TraceTree extends TraceSummary {
  readonly root: Span;
  /** Every span of the trace, ordered by start time, then span_id. */
  readonly spans: readonly Span[];
  /** Spans whose parent_span_id names no span of the trace, in `spans` order. */
  readonly orphans: readonly Span[];
  /** Spans by span_id. */
  readonly spanById: ReadonlyMap<string, Span>;
  /** Children by parent span_id, each list ordered by start time, then span_id. */
  readonly childrenById: ReadonlyMap<string, readonly Span[]>;
  /** When the tree was assembled (epoch ms, injected). */
  readonly assembledAtMs: number;
}

/** One service's share of a trace's latency (the seed's `LatencyBreakdown`). */
export interface LatencyBreakdown {
  readonly serviceName: string;
  /** Sum of the service's span durations. */
  readonly totalNs: bigint;
  /** {@link LatencyBreakdown.totalNs} floored to ms. */
  readonly totalMs: number;
  /** Sum of the service's span self times (see `selfTimeNs`). */
  readonly selfNs: bigint;
  /** {@link LatencyBreakdown.selfNs} floored to ms. */
  readonly selfMs: number;
  readonly spanCount: number;
  /** Share (0..1) of the service's spans that count as errors. */
  readonly errorRate: number;
}

/** The collector's configured limits and thresholds. */
export interface CollectorLimits {
  /** Spans one trace may hold; further spans are rejected as `trace_full`. */
  readonly maxSpansPerTrace: number;
  /** A trace first seen longer ago than this is expired: no more spans, and pruned. */
  readonly traceTtlMs: number;
  /** A trace whose total duration is over this is anomalous. */
  readonly anomalyThresholdMs: number;
  /**
   * A trace with at least this many error spans is anomalous too; 0 disables
   * the error condition.
   */
  readonly anomalyMinErrorCount: number;
  /** Latency SLO (ms) by service name, for the SLO compliance report. */
  readonly serviceSlosMs: Readonly<Record<string, number>>;
}

/**
 * The collector's limits with defaults for what `overrides` leaves out: the
 * seed's 500 spans per trace, 3600 s TTL and 1000 ms anomaly threshold, the
 * error condition disabled, and the seed's `SERVICE_SLO` latencies
 * (discovery 15 ms, mirror 5 ms, tracing 25 ms).
 */
export function defaultCollectorLimits(overrides: Partial<CollectorLimits> = {}): CollectorLimits {
  return {
    maxSpansPerTrace: overrides.maxSpansPerTrace ?? 500,
    traceTtlMs: overrides.traceTtlMs ?? 3_600_000,
    anomalyThresholdMs: overrides.anomalyThresholdMs ?? 1000,
    anomalyMinErrorCount: overrides.anomalyMinErrorCount ?? 0,
    serviceSlosMs: overrides.serviceSlosMs ?? { discovery: 15, mirror: 5, tracing: 25 },
  };
}
