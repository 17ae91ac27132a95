/**
 * OTLP trace data → the tracing domain. Pure: no store, no clock.
 *
 * Each OTLP span becomes a {@link SpanInput} checked by
 * {@link validateSpanInput}; a span that breaks a rule is rejected alone and
 * never aborts the rest of the request (OTLP's partial success).
 *
 * Rules, from OTLP and the OpenTelemetry specification:
 * - `service.name` of the resource is the service; absent, it is
 *   `unknown_service`, the SDKs' fallback.
 * - Tags merge resource attributes, then scope attributes and
 *   `otel.scope.name`/`otel.scope.version`, then span attributes; a later
 *   level wins a key clash. A non-empty status message becomes
 *   `otel.status_description` (the specification's name for it in
 *   non-OTLP formats).
 * - Ids are bytes: 16 for a trace id, 8 for a span id, rendered as
 *   lowercase hex. An empty parent_span_id marks a root.
 * - SPAN_KIND_UNSPECIFIED reads as internal; STATUS_CODE_UNSET as ok.
 * - Span events become logs: `{event: name, ...attributes}`; an event
 *   without a time takes its span's start time.
 * - Links, trace_state, flags and the dropped counts have no place in the
 *   domain and are not kept.
 * - Size limits truncate instead of rejecting, as SDKs' attribute limits
 *   do: an error span's long `exception.stacktrace` must not cost the span.
 *   A value over the tag value limit is cut and ends in `…`; keys over the
 *   key limit are dropped; past the tag limit, span attributes win over
 *   scope over resource ones and the count left out is kept in
 *   `otel.dropped_attributes_count`; past the log limit, the first events
 *   are kept and `otel.dropped_events_count` counts the rest.
 */
import { InvalidFieldError } from "../core/errors.js";
import type { Span, SpanKind, SpanLog, SpanStatus } from "../core/tracing/model.js";
import type { IngestSpan } from "../store/tracing-codec.js";
import { spanInputLimits, validateSpanInput, type SpanInput } from "../core/tracing/validation.js";
import type { ExportTraceServiceRequest } from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import type { AnyValue, KeyValue } from "../../gen/opentelemetry/proto/common/v1/common_pb.js";
import type { Resource } from "../../gen/opentelemetry/proto/resource/v1/resource_pb.js";
import {
  Span_SpanKind,
  Status_StatusCode,
  type ScopeSpans,
  type Span as OtlpSpan,
} from "../../gen/opentelemetry/proto/trace/v1/trace_pb.js";

/** The service name OTLP implies when the resource has no `service.name`. */
export const unknownServiceName = "unknown_service";

/** How many rejection reasons an error message quotes. */
const maxReportedReasons = 3;

/** The spans of an export request that passed validation, and what did not. */
export interface OtlpMappingResult<S extends IngestSpan = Span> {
  /** Valid spans, in request order. */
  readonly spans: readonly S[];
  /** Spans rejected as invalid. */
  readonly rejected: number;
  /** The first few reasons (see {@link summarizeRejections}); set when `rejected > 0`. */
  readonly errorMessage?: string;
}

const kinds: Record<Span_SpanKind, SpanKind> = {
  [Span_SpanKind.UNSPECIFIED]: "internal",
  [Span_SpanKind.INTERNAL]: "internal",
  [Span_SpanKind.SERVER]: "server",
  [Span_SpanKind.CLIENT]: "client",
  [Span_SpanKind.PRODUCER]: "producer",
  [Span_SpanKind.CONSUMER]: "consumer",
};

const statuses: Record<Status_StatusCode, SpanStatus> = {
  [Status_StatusCode.UNSET]: "ok",
  [Status_StatusCode.OK]: "ok",
  [Status_StatusCode.ERROR]: "error",
};

const traceIdBytes = 16;
const spanIdBytes = 8;

/**
 * Maps and validates every span of an export request. Field paths in the
 * reasons follow the request: `resource_spans[0].scope_spans[1].spans[2].trace_id`.
 *
 * @throws only what is not an {@link InvalidFieldError} (a bug)
 */
export function spansFromExportRequest(request: ExportTraceServiceRequest): OtlpMappingResult {
  const spans: Span[] = [];
  const reasons: string[] = [];
  let rejected = 0;
  request.resourceSpans.forEach((resourceSpans, r) => {
    const resourceTags = attributeEntries(resourceSpans.resource?.attributes ?? []);
    const serviceName = serviceNameOf(resourceSpans.resource);
    resourceSpans.scopeSpans.forEach((scopeSpans, s) => {
      const inherited = new Map([...resourceTags, ...scopeEntries(scopeSpans)]);
      scopeSpans.spans.forEach((span, i) => {
        const field = `resource_spans[${r}].scope_spans[${s}].spans[${i}]`;
        try {
          spans.push(validateSpanInput(spanInput(span, serviceName, inherited, field), field));
        } catch (error) {
          if (!(error instanceof InvalidFieldError)) throw error;
          rejected++;
          if (reasons.length < maxReportedReasons) reasons.push(inOtlpTerms(error.message));
        }
      });
    });
  });
  return rejected === 0 ? { spans, rejected } : { spans, rejected, errorMessage: summarizeRejections(reasons, rejected) };
}

/** Our span field names as an OTLP exporter knows them (the span validation speaks ours). */
const otlpFieldNames: Readonly<Record<string, string>> = {
  start_time: "start_time_unix_nano",
  end_time: "end_time_unix_nano",
  operation_name: "name",
  tags: "attributes",
  logs: "events",
};
const ourFieldNames = new RegExp(`\\b(?:${Object.keys(otlpFieldNames).join("|")})\\b`, "g");

/** A validation message with our span field names replaced by OTLP's (`end_time` → `end_time_unix_nano`). */
function inOtlpTerms(message: string): string {
  return message.replace(ourFieldNames, (name) => otlpFieldNames[name] ?? name);
}

/**
 * An OTLP rejection message: the first three reasons joined, then how many
 * rejected spans they leave unexplained, e.g.
 * `…trace_id must be 16 bytes, got 3; … (and 7 more rejected spans)`.
 *
 * @param reasons why spans were rejected; only the first few are quoted
 * @param rejected how many spans were rejected in all
 */
export function summarizeRejections(reasons: readonly string[], rejected: number): string {
  const quoted = reasons.slice(0, maxReportedReasons);
  const more = rejected - quoted.length;
  return more > 0 ? `${quoted.join("; ")} (and ${more} more rejected spans)` : quoted.join("; ");
}

/**
 * An attribute value as a tag value: a string as is; bool, int and double
 * through `String()`; bytes as base64; arrays and key-value lists as
 * compact JSON; an empty value as `""`.
 */
export function renderAnyValue(value: AnyValue | undefined): string {
  if (value === undefined) return "";
  const v = value.value;
  switch (v.case) {
    case "stringValue":
      return v.value;
    case "boolValue":
    case "intValue":
    case "doubleValue":
      return String(v.value);
    case "bytesValue":
      return Buffer.from(v.value).toString("base64");
    case "arrayValue":
    case "kvlistValue":
      return jsonOf(value);
    default:
      // Empty, or string_value_strindex: a Profiling-only reference that
      // other signals treat as absent.
      return "";
  }
}

/**
 * `value` as compact JSON text: int64 stays exact (digits, not a rounded
 * number), non-finite doubles become strings, bytes base64 strings, an
 * empty value `null`; a key-value list is an object, a later duplicate key
 * winning.
 */
function jsonOf(value: AnyValue): string {
  const v = value.value;
  switch (v.case) {
    case "stringValue":
      return JSON.stringify(v.value);
    case "boolValue":
    case "intValue":
      return String(v.value);
    case "doubleValue":
      return JSON.stringify(Number.isFinite(v.value) ? v.value : String(v.value));
    case "bytesValue":
      return JSON.stringify(Buffer.from(v.value).toString("base64"));
    case "arrayValue":
      return `[${v.value.values.map(jsonOf).join(",")}]`;
    case "kvlistValue": {
      const members = new Map<string, string>();
      for (const kv of v.value.values) members.set(kv.key, kv.value === undefined ? "null" : jsonOf(kv.value));
      return `{${[...members].map(([key, item]) => `${JSON.stringify(key)}:${item}`).join(",")}}`;
    }
    default:
      return "null";
  }
}

/**
 * Attributes as tag entries in order, a later duplicate key winning. A
 * Profiling-only `key_strindex` without a key is skipped, as OTLP asks of
 * other signals.
 */
function attributeEntries(attributes: readonly KeyValue[]): Map<string, string> {
  const entries = new Map<string, string>();
  for (const kv of attributes) {
    if (kv.key === "" && kv.keyStrindex !== 0) continue;
    entries.set(kv.key, renderAnyValue(kv.value));
  }
  return entries;
}

/** The scope's attributes, then its name and version when set. */
function scopeEntries(scopeSpans: ScopeSpans): Map<string, string> {
  const scope = scopeSpans.scope;
  const entries = attributeEntries(scope?.attributes ?? []);
  if (scope?.name) entries.set("otel.scope.name", scope.name);
  if (scope?.version) entries.set("otel.scope.version", scope.version);
  return entries;
}

function serviceNameOf(resource: Resource | undefined): string {
  let name = "";
  for (const kv of resource?.attributes ?? []) {
    if (kv.key === "service.name") name = renderAnyValue(kv.value);
  }
  return name || unknownServiceName;
}

/**
 * One OTLP span as a {@link SpanInput}. Id lengths are checked here, since
 * the domain sees only their hex form; everything else is left to
 * {@link validateSpanInput}.
 *
 * @throws InvalidFieldError for an id of the wrong length, or an unknown kind or status code
 */
function spanInput(span: OtlpSpan, serviceName: string, inherited: ReadonlyMap<string, string>, field: string): SpanInput {
  const kind = kinds[span.kind];
  if (kind === undefined) throw new InvalidFieldError(`${field}.kind`, `must be a known SpanKind, got ${span.kind}`);
  const code = span.status?.code ?? Status_StatusCode.UNSET;
  const status = statuses[code];
  if (status === undefined) throw new InvalidFieldError(`${field}.status.code`, `must be a known StatusCode, got ${code}`);
  const own = attributeEntries(span.attributes);
  if (span.status?.message) own.set("otel.status_description", span.status.message);
  const events = span.events.slice(0, spanInputLimits.maxLogs);
  const droppedEvents = span.events.length - events.length;
  if (droppedEvents > 0) own.set("otel.dropped_events_count", String(droppedEvents));
  return {
    traceId: hexId(span.traceId, traceIdBytes, `${field}.trace_id`),
    spanId: hexId(span.spanId, spanIdBytes, `${field}.span_id`),
    parentSpanId: hexId(span.parentSpanId, spanIdBytes, `${field}.parent_span_id`),
    serviceName,
    operationName: span.name,
    kind,
    status,
    startTimeNs: span.startTimeUnixNano,
    endTimeNs: span.endTimeUnixNano,
    tags: withinLimits([own, inherited], spanInputLimits.maxTags),
    logs: events.map(
      (event): SpanLog => ({
        // An event without a time happened, as far as anyone knows, when its span started.
        timeNs: event.timeUnixNano === 0n ? span.startTimeUnixNano : event.timeUnixNano,
        fields: withinLimits([new Map([["event", event.name]]), attributeEntries(event.attributes)], spanInputLimits.maxLogFields),
      }),
    ),
  };
}

const droppedAttributesKey = "otel.dropped_attributes_count";

/**
 * Merges tag sources, earlier sources winning a key clash, into a record
 * within the domain's size limits: keys over the key limit are dropped,
 * values over the value limit are cut to it (ending in `…`), and when more
 * than `maxEntries` remain, the first `maxEntries − 1` are kept plus
 * `otel.dropped_attributes_count`.
 */
function withinLimits(sources: readonly ReadonlyMap<string, string>[], maxEntries: number): Record<string, string> {
  const merged = new Map<string, string>();
  let dropped = 0;
  for (const source of sources) {
    for (const [key, value] of source) {
      if (merged.has(key)) continue;
      if (key.length === 0 || key.length > spanInputLimits.maxTagKeyChars) {
        dropped++;
        continue;
      }
      merged.set(key, value.length > spanInputLimits.maxTagValueChars ? `${value.slice(0, spanInputLimits.maxTagValueChars - 1)}…` : value);
    }
  }
  if (merged.size > maxEntries || (dropped > 0 && merged.size >= maxEntries)) {
    const kept = [...merged].slice(0, maxEntries - 1);
    dropped += merged.size - kept.length;
    return Object.fromEntries([...kept, [droppedAttributesKey, String(dropped)]]);
  }
  if (dropped > 0) merged.set(droppedAttributesKey, String(dropped));
  return Object.fromEntries(merged);
}

/**
 * An id's bytes as lowercase hex; empty bytes as `""` (unset, which
 * {@link validateSpanInput} reports as missing, or reads as no parent).
 *
 * @throws InvalidFieldError when the id is neither empty nor `bytes` long
 */
function hexId(id: Uint8Array, bytes: number, field: string): string {
  if (id.length !== 0 && id.length !== bytes) {
    throw new InvalidFieldError(field, `must be ${bytes} bytes, got ${id.length}`);
  }
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex");
}
