/**
 * Field rules of the tracing API. Each check throws an
 * {@link InvalidFieldError} naming the field as the API spells it
 * (`span.trace_id`, `spans[3].tags["k"]`) and the rule with the value seen.
 *
 * Ids follow W3C Trace Context and OTLP: lowercase hex, 32 digits for a
 * trace id and 16 for a span id, never all zeros. The seed shows no example
 * ids, so no other form is accepted; upper-case hex is rejected rather than
 * folded, so that one id has one spelling everywhere.
 */
import { InvalidFieldError } from "../errors.js";
import { spanKinds, spanStatuses, type Span, type SpanKind, type SpanLog, type SpanStatus } from "./model.js";

/**
 * A span as a client sent it, before validation. Unset fields are
 * `undefined`; the proto3 defaults (`""` for strings, `0n` for times) count
 * as unset too, since the wire cannot tell them apart. An adapter maps enum
 * values first: UNSPECIFIED becomes `undefined` (OTLP's STATUS_CODE_UNSET is
 * mapped to `"ok"` by the OTLP adapter, as OpenTelemetry defines it).
 */
export interface SpanInput {
  readonly spanId?: string;
  readonly traceId?: string;
  readonly parentSpanId?: string;
  readonly serviceName?: string;
  readonly operationName?: string;
  /** Optional: `"internal"` when unset, as OpenTelemetry reads SPAN_KIND_UNSPECIFIED. */
  readonly kind?: SpanKind;
  readonly status?: SpanStatus;
  readonly startTimeNs?: bigint;
  readonly endTimeNs?: bigint;
  readonly tags?: Readonly<Record<string, string>>;
  readonly logs?: readonly SpanLog[];
}

/**
 * The seed's `REQUIRED_SPAN_FIELDS`, as the API spells them, in the order
 * a missing-fields message lists them.
 */
export const requiredSpanFields = [
  "span_id",
  "trace_id",
  "service_name",
  "operation_name",
  "start_time",
  "end_time",
  "status",
] as const;

/** One of {@link requiredSpanFields}. */
export type RequiredSpanField = (typeof requiredSpanFields)[number];

/** Size bounds of a span's text, tags and logs. Lengths count UTF-16 code units. */
export const spanInputLimits = {
  maxServiceNameChars: 256,
  maxOperationNameChars: 1024,
  maxTags: 128,
  maxTagKeyChars: 256,
  maxTagValueChars: 4096,
  maxLogs: 128,
  /** Fields of one log entry; keys and values follow the tag bounds. */
  maxLogFields: 128,
} as const;

const traceIdPattern = /^[0-9a-f]{32}$/;
const spanIdPattern = /^[0-9a-f]{16}$/;
const allZeros = /^0+$/;
/** The largest int64: SQLite and OTLP's fixed64 both hold it. */
const maxTimeNs = 9_223_372_036_854_775_807n;
/** How much of an offending value a message quotes. */
const maxQuotedChars = 64;

/**
 * The {@link requiredSpanFields} that `input` leaves unset, in that order.
 */
export function missingSpanFields(input: SpanInput): RequiredSpanField[] {
  const present: Record<RequiredSpanField, boolean> = {
    span_id: isSet(input.spanId),
    trace_id: isSet(input.traceId),
    service_name: isSet(input.serviceName),
    operation_name: isSet(input.operationName),
    start_time: input.startTimeNs !== undefined && input.startTimeNs !== 0n,
    end_time: input.endTimeNs !== undefined && input.endTimeNs !== 0n,
    status: input.status !== undefined,
  };
  return requiredSpanFields.filter((field) => !present[field]);
}

/**
 * Checks a span as a client sent it and returns it as a {@link Span}
 * (`kind` defaulted to `"internal"`, tags and logs to empty, an empty
 * parent_span_id read as none).
 *
 * Order of checks: all missing required fields at once (one message naming
 * every one: `span is missing required fields: trace_id, status`), then ids,
 * times (end before start is invalid; equal is a zero-length span), names,
 * enums, tags, logs.
 *
 * @param fieldPrefix the message's field path, e.g. `span` or `spans[3]`
 * @throws InvalidFieldError for the missing fields, or the first field that breaks a rule
 */
export function validateSpanInput(input: SpanInput, fieldPrefix = "span"): Span {
  const missing = missingSpanFields(input);
  if (missing.length > 0) {
    throw new InvalidFieldError(fieldPrefix, `is missing required fields: ${missing.join(", ")}`);
  }
  // missingSpanFields proved these set.
  const spanId = input.spanId!;
  const traceId = input.traceId!;
  const startTimeNs = input.startTimeNs!;
  const endTimeNs = input.endTimeNs!;
  const parentSpanId = isSet(input.parentSpanId) ? input.parentSpanId : undefined;

  validateTraceId(traceId, `${fieldPrefix}.trace_id`);
  validateSpanId(spanId, `${fieldPrefix}.span_id`);
  if (parentSpanId !== undefined) {
    validateSpanId(parentSpanId, `${fieldPrefix}.parent_span_id`);
    if (parentSpanId === spanId) {
      throw new InvalidFieldError(`${fieldPrefix}.parent_span_id`, `must differ from span_id, got ${quote(spanId)}`);
    }
  }
  checkTime(startTimeNs, `${fieldPrefix}.start_time`);
  checkTime(endTimeNs, `${fieldPrefix}.end_time`);
  if (endTimeNs < startTimeNs) {
    throw new InvalidFieldError(
      `${fieldPrefix}.end_time`,
      `must not be before start_time, got end ${endTimeNs} ns < start ${startTimeNs} ns`,
    );
  }
  checkLength(input.serviceName!, spanInputLimits.maxServiceNameChars, `${fieldPrefix}.service_name`, "");
  checkLength(input.operationName!, spanInputLimits.maxOperationNameChars, `${fieldPrefix}.operation_name`, "");
  const kind = input.kind ?? "internal";
  if (!spanKinds.includes(kind)) {
    throw new InvalidFieldError(`${fieldPrefix}.kind`, `must be one of ${spanKinds.join(", ")}, got ${quote(String(kind))}`);
  }
  const status = input.status!;
  if (!spanStatuses.includes(status)) {
    throw new InvalidFieldError(
      `${fieldPrefix}.status`,
      `must be one of ${spanStatuses.join(", ")}, got ${quote(String(status))}`,
    );
  }
  const tags = input.tags ?? {};
  checkStringMap(tags, spanInputLimits.maxTags, `${fieldPrefix}.tags`);
  const logs = input.logs ?? [];
  checkLogs(logs, `${fieldPrefix}.logs`);

  return {
    spanId,
    traceId,
    ...(parentSpanId !== undefined ? { parentSpanId } : {}),
    serviceName: input.serviceName!,
    operationName: input.operationName!,
    kind,
    status,
    startTimeNs,
    endTimeNs,
    tags,
    logs,
  };
}

/**
 * Checks a trace id: 32 lowercase hex digits, not all zeros. Also for the
 * trace ids of query requests.
 *
 * @throws InvalidFieldError naming `field`
 */
export function validateTraceId(traceId: string, field: string): void {
  checkHexId(traceId, traceIdPattern, 32, field);
}

/**
 * Checks a span id: 16 lowercase hex digits, not all zeros. Also for the
 * span ids of query requests.
 *
 * @throws InvalidFieldError naming `field`
 */
export function validateSpanId(spanId: string, field: string): void {
  checkHexId(spanId, spanIdPattern, 16, field);
}

function checkHexId(id: string, pattern: RegExp, digits: number, field: string): void {
  if (!pattern.test(id)) {
    throw new InvalidFieldError(field, `must be ${digits} lowercase hex digits, got ${quote(id)}`);
  }
  if (allZeros.test(id)) throw new InvalidFieldError(field, "must not be all zeros");
}

function checkTime(timeNs: bigint, field: string): void {
  if (timeNs < 1n || timeNs > maxTimeNs) {
    throw new InvalidFieldError(field, `must be 1..${maxTimeNs} ns since the Unix epoch, got ${timeNs}`);
  }
}

function checkLogs(logs: readonly SpanLog[], field: string): void {
  if (logs.length > spanInputLimits.maxLogs) {
    throw new InvalidFieldError(field, `must have at most ${spanInputLimits.maxLogs} entries, got ${logs.length}`);
  }
  logs.forEach((log, i) => {
    const logField = `${field}[${i}]`;
    checkTime(log.timeNs, `${logField}.time`);
    checkStringMap(log.fields, spanInputLimits.maxLogFields, `${logField}.fields`);
  });
}

/** At most `maxEntries` entries; keys 1..256 characters, values at most 4096. */
function checkStringMap(map: Readonly<Record<string, string>>, maxEntries: number, field: string): void {
  const entries = Object.entries(map);
  if (entries.length > maxEntries) {
    throw new InvalidFieldError(field, `must have at most ${maxEntries} entries, got ${entries.length}`);
  }
  // The entry's field path is built only for an error: this loop runs for
  // every tag of every ingested span.
  const entryField = (key: string): string => `${field}[${quote(key)}]`;
  for (const [key, value] of entries) {
    if (key.length === 0 || key.length > spanInputLimits.maxTagKeyChars) {
      throw new InvalidFieldError(entryField(key), `key must be 1..${spanInputLimits.maxTagKeyChars} characters, got ${key.length}`);
    }
    if (typeof value !== "string") {
      throw new InvalidFieldError(entryField(key), `value must be a string, got ${typeof value}`);
    }
    if (value.length > spanInputLimits.maxTagValueChars) {
      throw new InvalidFieldError(
        entryField(key),
        `value must be at most ${spanInputLimits.maxTagValueChars} characters, got ${value.length}`,
      );
    }
  }
}

function checkLength(text: string, maxChars: number, field: string, subject: string): void {
  if (text.length > maxChars) {
    throw new InvalidFieldError(field, `${subject}must be at most ${maxChars} characters, got ${text.length}`);
  }
}

function isSet(text: string | undefined): text is string {
  return text !== undefined && text !== "";
}

/** The value as a JSON string, cut to a readable length. */
function quote(value: string): string {
  return JSON.stringify(value.length > maxQuotedChars ? `${value.slice(0, maxQuotedChars)}…` : value);
}
