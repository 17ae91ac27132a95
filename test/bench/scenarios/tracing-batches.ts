/**
 * The request bytes of the tracing bench: 1,000-span batches in the native
 * (`IngestBatchRequest`) and OTLP (`ExportTraceServiceRequest`) formats,
 * built from the same {@link traceShapes}, and the 500-span trace the
 * analysis targets read.
 *
 * Why templates: protobuf-es takes ~15 ms to encode a 1,000-span batch,
 * which would cost the load clients most of a core at the target rate on a
 * machine whose two cores they share with the server. So each load client
 * encodes one batch once (with `toBinary`) and sends, for request `g`, a copy
 * in which every trace id and span time is rewritten in place:
 *
 * - Trace ids are unique per (client, template trace, generation): 8 hex
 *   digits that a bijection of the generation scatters (so new ids land all
 *   over the trace-id index, as random ids do), then the client, the
 *   template trace and 16 fixed random digits.
 * - Times move forward by a fixed step per generation (4 s native, 2^32 ns
 *   OTLP), so each service's spans keep arriving in time order. The step is
 *   written as protobuf-es encodes it: the native Timestamp's `seconds`
 *   varint (5 bytes for any time in this century, so lengths never change)
 *   as `toBinary` renders it, OTLP's `fixed64` nanoseconds by adding to its
 *   high word.
 * - Traces cross batches, as spans of one trace exported by several services
 *   do: request `g` carries the downstream services' spans of trace
 *   generation `g` and the root service's spans (root included) of
 *   generation `g − 1`, whose trace rows the previous batch created. So a
 *   batch both creates ~80 traces and completes ~80 others.
 *
 * Where each id and time sits is found once, after encoding, by searching
 * the template for the values it was built with, span by span in encoding
 * order (an id is 32 ASCII or 16 random bytes; a time is the Timestamp's
 * tagged 5-byte varint or its exact 8 bytes), so no offset is computed from
 * knowledge of the wire format.
 */
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  IngestBatchRequestSchema,
  SpanKind,
  SpanStatus,
  type IngestBatchRequest,
  type SpanSchema,
} from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { ExportTraceServiceRequestSchema } from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import type { KeyValueSchema } from "../../../gen/opentelemetry/proto/common/v1/common_pb.js";
import {
  Span_SpanKind,
  Status_StatusCode,
  type SpanSchema as OtlpSpanSchema,
} from "../../../gen/opentelemetry/proto/trace/v1/trace_pb.js";
import { createRandom, hex, traceShape, traceShapes, type ShapeKind, type SpanShape } from "./tracing-traces.js";

/** Spans per batch. */
export const batchSpans = 1000;
/** Spans of the trace the analysis targets read (the collector's default max spans per trace). */
export const analysisSpans = 500;
/** The analysis trace's id (W3C Trace Context's example id). */
export const analysisTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

const nsPerSecond = 1_000_000_000n;
/** Generation step of native span times: whole seconds, so only `seconds` changes. */
const nativeStepNs = 4n * nsPerSecond;
/** Generation step of OTLP span times: one unit of the fixed64's high word (~4.3 s). */
const otlpStepNs = 1n << 32n;

/** Span times of generation 0 start here: the bench's start, to the second. */
function baseNs(): bigint {
  return BigInt(Math.floor(Date.now() / 1000)) * nsPerSecond;
}

/** The part of a template trace in one batch: which spans, and how many generations behind. */
interface Part {
  /** Template trace number. */
  readonly trace: number;
  /** 0: downstream spans of this generation's trace; 1: the root service's spans of the previous one. */
  readonly lag: 0 | 1;
  /** The trace id suffix (24 hex digits) shared by every generation of this template trace. */
  readonly suffix: string;
}

/** A span as it sits in a template, with the part it belongs to. */
interface PlacedSpan {
  readonly shape: SpanShape;
  readonly part: Part;
}

/** 32-bit bijection of the generation (per template trace): the first 8 hex digits of a trace id. */
function scatter(generation: number, trace: number): number {
  return Math.imul((generation >>> 0) ^ Math.imul(trace + 1, 0x85ebca6b), 0x9e3779b1) >>> 0;
}

/** The trace id of `part` in request generation `generation`. */
function traceIdOf(part: Part, generation: number): string {
  return hex(scatter(generation - part.lag, part.trace), 8) + part.suffix;
}

/**
 * The spans of one load client's template batch, in batch order (trace by
 * trace: downstream part, then root-service part), with the times of
 * request generation 0 (the root-service part one step earlier).
 */
function templateSpans(client: number, stepNs: bigint): PlacedSpan[] {
  const random = createRandom(0x5eed0000 + client);
  const traces = traceShapes(random, batchSpans, baseNs());
  const placed: PlacedSpan[] = [];
  traces.forEach((trace, t) => {
    const suffix = hex(client, 4) + hex(t, 4) + hex(Math.floor(random() * 0x100000000), 8) + hex(Math.floor(random() * 0xffffffff) + 1, 8);
    const rootService = trace.spans[0]!.service;
    for (const lag of [0, 1] as const) {
      const part: Part = { trace: t, lag, suffix };
      for (const shape of trace.spans) {
        if ((shape.service === rootService) !== (lag === 1)) continue;
        placed.push({ part, shape: lag === 0 ? shape : shifted(shape, -stepNs) });
      }
    }
  });
  return placed;
}

function shifted(shape: SpanShape, byNs: bigint): SpanShape {
  return {
    ...shape,
    startNs: shape.startNs + byNs,
    endNs: shape.endNs + byNs,
    logs: shape.logs.map((log) => ({ ...log, timeNs: log.timeNs + byNs })),
  };
}

function timestamp(ns: bigint): Timestamp {
  return create(TimestampSchema, { seconds: ns / nsPerSecond, nanos: Number(ns % nsPerSecond) });
}

const nativeKinds: Record<ShapeKind, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  internal: SpanKind.INTERNAL,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
};

/** A shape as the native API's span of trace `traceId`. */
export function nativeSpan(shape: SpanShape, traceId: string): MessageInitShape<typeof SpanSchema> {
  return {
    spanId: shape.spanId,
    traceId,
    parentSpanId: shape.parentSpanId ?? "",
    serviceName: shape.service,
    operationName: shape.operation,
    kind: nativeKinds[shape.kind],
    status: shape.error ? SpanStatus.ERROR : SpanStatus.OK,
    startTime: timestamp(shape.startNs),
    endTime: timestamp(shape.endNs),
    tags: shape.tags,
    logs: shape.logs.map((log) => ({ time: timestamp(log.timeNs), fields: log.fields })),
  };
}

const otlpKinds: Record<ShapeKind, Span_SpanKind> = {
  server: Span_SpanKind.SERVER,
  client: Span_SpanKind.CLIENT,
  internal: Span_SpanKind.INTERNAL,
  producer: Span_SpanKind.PRODUCER,
  consumer: Span_SpanKind.CONSUMER,
};

/** Tags OpenTelemetry's conventions type as integers. */
const integerAttributes = new Set(["http.status_code", "rpc.grpc.status_code"]);

function attributes(tags: Readonly<Record<string, string>>): MessageInitShape<typeof KeyValueSchema>[] {
  return Object.entries(tags).map(([key, value]) => ({
    key,
    value: { value: integerAttributes.has(key) ? { case: "intValue", value: BigInt(value) } : { case: "stringValue", value } },
  }));
}

/** A shape as an OTLP span of trace `traceId` (hex), as the OpenTelemetry JS SDK exports one. */
function otlpSpan(shape: SpanShape, traceId: string): MessageInitShape<typeof OtlpSpanSchema> {
  const error = shape.logs[0]?.fields["exception.message"];
  return {
    traceId: Buffer.from(traceId, "hex"),
    spanId: Buffer.from(shape.spanId, "hex"),
    parentSpanId: shape.parentSpanId === undefined ? new Uint8Array(0) : Buffer.from(shape.parentSpanId, "hex"),
    flags: 0x101,
    name: shape.operation,
    kind: otlpKinds[shape.kind],
    startTimeUnixNano: shape.startNs,
    endTimeUnixNano: shape.endNs,
    attributes: attributes(shape.tags),
    events: shape.logs.map((log) => ({
      timeUnixNano: log.timeNs,
      name: log.fields["event"] ?? "log",
      attributes: attributes(Object.fromEntries(Object.entries(log.fields).filter(([key]) => key !== "event"))),
    })),
    status: shape.error ? { code: Status_StatusCode.ERROR, message: error ?? "error" } : { code: Status_StatusCode.UNSET },
  };
}

/** The resource of a service's SDK, as the OpenTelemetry JS SDK describes a process. */
function resourceAttributes(service: string, client: number): MessageInitShape<typeof KeyValueSchema>[] {
  return attributes({
    "service.name": service,
    "service.version": "1.8.2",
    "service.instance.id": `${service}-7d9f8b6c5-${hex(client, 4)}`,
    "host.name": `ip-10-0-${client % 250}-17.ec2.internal`,
    "telemetry.sdk.language": "nodejs",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "2.12.0",
  });
}

/** Where a trace id or a time sits in a template and how to rewrite it. */
type Slot =
  | { readonly type: "id"; readonly offset: number; readonly part: Part }
  /** Native: the Timestamp's tagged `seconds` varint of `seconds` at generation 0. */
  | { readonly type: "seconds"; readonly offset: number; readonly seconds: bigint }
  /** OTLP: a fixed64 nanosecond time whose high word is `high` at generation 0. */
  | { readonly type: "nanos"; readonly offset: number; readonly high: number };

/** The tagged varint of `seconds`, as the start of an encoded Timestamp (nanos 0 is omitted). */
function secondsBytes(seconds: bigint): Uint8Array {
  return toBinary(TimestampSchema, create(TimestampSchema, { seconds }));
}

/** The 8 little-endian bytes of a fixed64. */
function fixed64Bytes(value: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(value);
  return bytes;
}

/**
 * One load client's encoded batch and the places to rewrite per request
 * generation (see the module comment).
 */
export class BatchTemplate {
  /** Where each trace id sits, and the index of its part in `parts`. */
  private readonly idOffsets: Int32Array;
  private readonly idParts: Int32Array;
  /** Native: where each tagged `seconds` varint sits, and its generation-0 value's index in `secondValues`. */
  private readonly secondOffsets: Int32Array;
  private readonly secondIndexes: Int32Array;
  private readonly secondValues: readonly bigint[];
  /** OTLP: where each fixed64 time sits, and its high word at generation 0. */
  private readonly nanoOffsets: Int32Array;
  private readonly nanoHighs: Uint32Array;

  private constructor(
    private readonly bytes: Buffer,
    slots: readonly Slot[],
    private readonly parts: readonly Part[],
    private readonly idBytes: (traceId: string) => Buffer,
  ) {
    const partIndex = new Map(parts.map((part, i) => [part, i]));
    const ids = slots.flatMap((slot) => (slot.type === "id" ? [slot] : []));
    this.idOffsets = Int32Array.from(ids, (slot) => slot.offset);
    this.idParts = Int32Array.from(ids, (slot) => partIndex.get(slot.part)!);
    const seconds = slots.flatMap((slot) => (slot.type === "seconds" ? [slot] : []));
    this.secondValues = [...new Set(seconds.map((slot) => slot.seconds))];
    this.secondOffsets = Int32Array.from(seconds, (slot) => slot.offset);
    this.secondIndexes = Int32Array.from(seconds, (slot) => this.secondValues.indexOf(slot.seconds));
    const nanos = slots.flatMap((slot) => (slot.type === "nanos" ? [slot] : []));
    this.nanoOffsets = Int32Array.from(nanos, (slot) => slot.offset);
    this.nanoHighs = Uint32Array.from(nanos, (slot) => slot.high);
  }

  /**
   * The native template of load client `client`: an `IngestBatchRequest` of
   * {@link batchSpans} spans.
   */
  static native(client: number): BatchTemplate {
    const placed = templateSpans(client, nativeStepNs);
    const request = create(IngestBatchRequestSchema, { spans: placed.map(({ shape, part }) => nativeSpan(shape, traceIdOf(part, 0))) });
    const bytes = Buffer.from(toBinary(IngestBatchRequestSchema, request));
    const idBytes = (traceId: string): Buffer => Buffer.from(traceId, "latin1");
    const slots: Slot[] = [];
    let at = 0;
    for (const { shape, part } of placed) {
      at = BatchTemplate.find(bytes, idBytes(traceIdOf(part, 0)), at, slots, { type: "id", offset: 0, part });
      for (const ns of [shape.startNs, shape.endNs, ...shape.logs.map((log) => log.timeNs)]) {
        const seconds = ns / nsPerSecond;
        at = BatchTemplate.find(bytes, secondsBytes(seconds), at, slots, { type: "seconds", offset: 0, seconds });
      }
    }
    return new BatchTemplate(bytes, slots, uniqueParts(placed), idBytes);
  }

  /**
   * The OTLP template of load client `client`: an `ExportTraceServiceRequest`
   * of {@link batchSpans} spans, one resource per service (its SDK's
   * attributes, `service.name` among them), one instrumentation scope each.
   */
  static otlp(client: number): BatchTemplate {
    const placed = templateSpans(client, otlpStepNs);
    const byService = new Map<string, PlacedSpan[]>();
    for (const span of placed) {
      const list = byService.get(span.shape.service);
      if (list === undefined) byService.set(span.shape.service, [span]);
      else list.push(span);
    }
    const request = create(ExportTraceServiceRequestSchema, {
      resourceSpans: [...byService].map(([service, spans]) => ({
        resource: { attributes: resourceAttributes(service, client) },
        scopeSpans: [
          {
            scope: { name: service === "frontend" ? "@opentelemetry/instrumentation-http" : "@opentelemetry/instrumentation-grpc", version: "0.223.0" },
            spans: spans.map(({ shape, part }) => otlpSpan(shape, traceIdOf(part, 0))),
          },
        ],
      })),
    });
    const bytes = Buffer.from(toBinary(ExportTraceServiceRequestSchema, request));
    const idBytes = (traceId: string): Buffer => Buffer.from(traceId, "hex");
    const slots: Slot[] = [];
    let at = 0;
    // Encoding order: resource by resource, span by span.
    for (const spans of byService.values()) {
      for (const { shape, part } of spans) {
        at = BatchTemplate.find(bytes, idBytes(traceIdOf(part, 0)), at, slots, { type: "id", offset: 0, part });
        for (const ns of [shape.startNs, shape.endNs, ...shape.logs.map((log) => log.timeNs)]) {
          at = BatchTemplate.find(bytes, fixed64Bytes(ns), at, slots, { type: "nanos", offset: 0, high: Number(ns >> 32n) });
        }
      }
    }
    return new BatchTemplate(bytes, slots, uniqueParts(placed), idBytes);
  }

  /** Finds `value` in `bytes` from `from`, records `slot` at its offset, returns the offset after it. */
  private static find(bytes: Buffer, value: Uint8Array, from: number, slots: Slot[], slot: Slot): number {
    const offset = bytes.indexOf(value, from);
    if (offset < 0) throw new Error(`tracing bench template: ${slot.type} not found after byte ${from}`);
    slots.push({ ...slot, offset });
    return offset + value.length;
  }

  /** Encoded size in bytes. */
  get size(): number {
    return this.bytes.length;
  }

  /**
   * The batch of request generation `generation` (0, 1, …): a fresh copy
   * with the ids and times of that generation. Costs a 250 KB copy and
   * ~3,000 writes of a few bytes (~0.1 ms), not an encoding.
   */
  at(generation: number): Buffer {
    const out = Buffer.allocUnsafe(this.bytes.length);
    this.bytes.copy(out);
    const ids = this.parts.map((part) => this.idBytes(traceIdOf(part, generation)));
    for (let i = 0; i < this.idOffsets.length; i++) copyInto(out, ids[this.idParts[i]!]!, this.idOffsets[i]!);
    const step = BigInt(generation) * (nativeStepNs / nsPerSecond);
    const seconds = this.secondValues.map((value) => {
      const encoded = secondsBytes(value + step);
      if (encoded.length !== secondsBytes(value).length) throw new Error("tracing bench template: a time outgrew its varint");
      return encoded;
    });
    for (let i = 0; i < this.secondOffsets.length; i++) copyInto(out, seconds[this.secondIndexes[i]!]!, this.secondOffsets[i]!);
    for (let i = 0; i < this.nanoOffsets.length; i++) out.writeUInt32LE((this.nanoHighs[i]! + generation) >>> 0, this.nanoOffsets[i]! + 4);
    return out;
  }
}

/** `source` written into `target` at `offset`; a plain loop, cheaper than `set` for a few bytes. */
function copyInto(target: Uint8Array, source: Uint8Array, offset: number): void {
  for (let k = 0; k < source.length; k++) target[offset + k] = source[k]!;
}

function uniqueParts(placed: readonly PlacedSpan[]): Part[] {
  return [...new Set(placed.map((span) => span.part))];
}

/**
 * The analysis targets' trace: {@link analysisSpans} spans over five
 * services, deep and wide (the same generator as the batches), as one
 * `IngestBatchRequest`.
 */
export function analysisTraceRequest(): IngestBatchRequest {
  const trace = traceShape(createRandom(0xa11a), analysisSpans, baseNs() - 60n * nsPerSecond);
  return create(IngestBatchRequestSchema, { spans: trace.spans.map((shape) => nativeSpan(shape, analysisTraceId)) });
}

