/**
 * Translation between the TraceCollector API messages and the tracing core's
 * domain values: enums, Timestamps (nanosecond precision both ways) and
 * int64 fields (bigint on the wire, numbers or bigints inside).
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  AnomalyEventSchema,
  AnomalyEventType,
  AnomalyReason,
  CriticalPathSpanSchema,
  DropReason,
  FlamegraphNodeSchema,
  SpanKind,
  SpanSchema,
  SpanStatus,
  TraceAnomalySchema,
  TraceSummarySchema,
  type AnomalyEvent as AnomalyEventMessage,
  type CriticalPathSpan as CriticalPathSpanMessage,
  type FlamegraphNode as FlamegraphNodeMessage,
  type IngestBatchRequest,
  type Span as SpanMessage,
  type TraceSummary as TraceSummaryMessage,
} from "../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { InvalidFieldError } from "../core/errors.js";
import type { AnomalyEvent, AnomalyReason as Reason } from "../core/tracing/anomalies.js";
import type { CriticalPathSpan } from "../core/tracing/critical-path.js";
import type { FlamegraphNode } from "../core/tracing/flamegraph.js";
import type { IngestRejection } from "../core/tracing/ingest-rules.js";
import { durationMs, nsPerSecond, timestampParts, type Span, type SpanKind as Kind, type SpanStatus as Status } from "../core/tracing/model.js";
import { validateSpanInput, type SpanInput } from "../core/tracing/validation.js";
import type { TraceRecord } from "../store/tracing-store.js";

const kindOf: Record<SpanKind, Kind | undefined> = {
  [SpanKind.UNSPECIFIED]: undefined,
  [SpanKind.SERVER]: "server",
  [SpanKind.CLIENT]: "client",
  [SpanKind.PRODUCER]: "producer",
  [SpanKind.CONSUMER]: "consumer",
  [SpanKind.INTERNAL]: "internal",
};

/** The API enum of a span kind. */
export const kindEnum: Record<Kind, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  internal: SpanKind.INTERNAL,
};

const statusOf: Record<SpanStatus, Status | undefined> = {
  [SpanStatus.UNSPECIFIED]: undefined,
  [SpanStatus.OK]: "ok",
  [SpanStatus.ERROR]: "error",
  [SpanStatus.TIMEOUT]: "timeout",
  [SpanStatus.CANCELLED]: "cancelled",
};

/** The API enum of a span status. */
export const statusEnum: Record<Status, SpanStatus> = {
  ok: SpanStatus.OK,
  error: SpanStatus.ERROR,
  timeout: SpanStatus.TIMEOUT,
  cancelled: SpanStatus.CANCELLED,
};

const reasonEnum: Record<Reason, AnomalyReason> = {
  duration: AnomalyReason.DURATION,
  errors: AnomalyReason.ERRORS,
};

/** The API's drop reason of an ingest rejection. */
export const dropReasonEnum: Record<IngestRejection, DropReason> = {
  trace_full: DropReason.TRACE_FULL,
  trace_expired: DropReason.TRACE_EXPIRED,
};


/**
 * Nanoseconds since the epoch of a Timestamp; undefined when unset.
 *
 * @throws InvalidFieldError when `nanos` is outside 0..999,999,999
 */
export function timestampToNs(timestamp: Timestamp | undefined, field: string): bigint | undefined {
  if (timestamp === undefined) return undefined;
  if (!Number.isInteger(timestamp.nanos) || timestamp.nanos < 0 || timestamp.nanos > 999_999_999) {
    throw new InvalidFieldError(`${field}.nanos`, `must be 0..999999999, got ${timestamp.nanos}`);
  }
  return timestamp.seconds * nsPerSecond + BigInt(timestamp.nanos);
}

/** A Timestamp of nanoseconds since the epoch, exact. */
export function timestampFromNs(ns: bigint): Timestamp {
  return create(TimestampSchema, timestampParts(ns));
}

/**
 * A span message as the core's unvalidated input: UNSPECIFIED enums and
 * unset times become undefined, so validation names them as missing.
 *
 * @param field the span's field path, e.g. `spans[3]`, for time errors
 * @throws InvalidFieldError for a Timestamp with out-of-range nanos
 */
export function spanInput(message: SpanMessage, field: string): SpanInput {
  return {
    spanId: message.spanId,
    traceId: message.traceId,
    parentSpanId: message.parentSpanId,
    serviceName: message.serviceName,
    operationName: message.operationName,
    kind: kindOf[message.kind],
    status: statusOf[message.status],
    startTimeNs: timestampToNs(message.startTime, `${field}.start_time`),
    endTimeNs: timestampToNs(message.endTime, `${field}.end_time`),
    tags: message.tags,
    logs: message.logs.map((log, i) => ({
      timeNs: timestampToNs(log.time, `${field}.logs[${i}].time`) ?? 0n,
      fields: log.fields,
    })),
  };
}

/** Most spans one IngestBatch may carry. */
export const maxBatchSpans = 10_000;

/**
 * The spans of an IngestBatch request, mapped and validated; the first bad
 * span fails the whole batch (nothing of it is stored).
 *
 * @throws InvalidFieldError naming `spans` (too many) or `spans[i].field`
 */
export function spansOfBatch(request: IngestBatchRequest): Span[] {
  if (request.spans.length > maxBatchSpans) {
    throw new InvalidFieldError("spans", `must have at most ${maxBatchSpans} entries, got ${request.spans.length}`);
  }
  return request.spans.map((message, i) => validateSpanInput(spanInput(message, `spans[${i}]`), `spans[${i}]`));
}

/** A domain span as the API's message, with `duration_ms`. */
export function renderSpan(span: Span): SpanMessage {
  return create(SpanSchema, {
    spanId: span.spanId,
    traceId: span.traceId,
    parentSpanId: span.parentSpanId ?? "",
    serviceName: span.serviceName,
    operationName: span.operationName,
    kind: kindEnum[span.kind],
    status: statusEnum[span.status],
    startTime: timestampFromNs(span.startTimeNs),
    endTime: timestampFromNs(span.endTimeNs),
    tags: { ...span.tags },
    logs: span.logs.map((log) => ({ time: timestampFromNs(log.timeNs), fields: { ...log.fields } })),
    durationMs: BigInt(durationMs(span)),
  });
}

/** A stored trace's row as the API's `TraceSummary`. */
export function renderTraceSummary(record: TraceRecord): TraceSummaryMessage {
  return create(TraceSummarySchema, {
    traceId: record.traceId,
    spanCount: record.spanCount,
    errorCount: record.errorCount,
    totalDurationMs: BigInt(record.totalDurationMs),
    rootServiceName: record.root?.serviceName ?? "",
    rootOperationName: record.root?.operationName ?? "",
    firstSeen: timestampFromNs(BigInt(record.firstSeenMs) * 1_000_000n),
  });
}

/** One span of a critical path, with its critical time in ms and exact. */
export function renderCriticalPathSpan(entry: CriticalPathSpan): CriticalPathSpanMessage {
  const seconds = entry.criticalNs / nsPerSecond;
  return create(CriticalPathSpanSchema, {
    span: renderSpan(entry.span),
    criticalTimeMs: BigInt(entry.criticalMs),
    criticalTime: create(DurationSchema, { seconds, nanos: Number(entry.criticalNs - seconds * nsPerSecond) }),
  });
}

/** A flame graph frame tree as messages. */
export function renderFlamegraph(node: FlamegraphNode): FlamegraphNodeMessage {
  return create(FlamegraphNodeSchema, {
    name: node.name,
    value: BigInt(node.value),
    selfValue: BigInt(node.selfValue),
    spanId: node.spanId,
    children: node.children.map(renderFlamegraph),
  });
}

/** An anomaly log event as the watch's message. */
export function renderAnomalyEvent(event: AnomalyEvent): AnomalyEventMessage {
  const { anomaly } = event;
  const message = create(TraceAnomalySchema, {
    traceId: anomaly.traceId,
    totalDurationMs: BigInt(anomaly.totalDurationMs),
    errorCount: anomaly.errorCount,
    spanCount: anomaly.spanCount,
    rootServiceName: anomaly.rootServiceName ?? "",
    rootOperationName: anomaly.rootOperationName ?? "",
    reasons: anomaly.reasons.map((reason) => reasonEnum[reason]),
    reason: anomaly.reason,
    detectedAt: timestampFromNs(BigInt(event.detectedAtMs) * 1_000_000n),
  });
  return create(AnomalyEventSchema, {
    type: event.type === "detected" ? AnomalyEventType.DETECTED : AnomalyEventType.UPDATED,
    anomaly: message,
  });
}
