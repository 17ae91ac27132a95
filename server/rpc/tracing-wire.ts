/**
 * Hand-written protobuf encoding of GetTrace's answer: a 500-span trace is
 * written in a fraction of the time that building its messages and encoding
 * them with protobuf-es takes, mostly because each stored span's tags and
 * logs are copied as the bytes the store keeps (see `encodedAttrsOf`). The
 * output decodes to the message `renderSpan` and protobuf-es would build
 * (tested); field numbers and enum values come from the generated
 * descriptors.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { GetTraceResponseSchema, SpanSchema, TraceTreeSchema } from "../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { durationMs, type Span, type TraceTree } from "../core/tracing/model.js";
import { encodedAttrsOf, storedSpanField, writeTimestamp } from "../store/tracing-codec.js";
import { kindEnum, statusEnum } from "./tracing-mapping.js";

/** Field numbers of a message by the fields' local names. */
function fieldNumbers<const Names extends string>(schema: DescMessage, names: readonly Names[]): Record<Names, number> {
  const numbers = {} as Record<Names, number>;
  for (const name of names) {
    const field = schema.fields.find((candidate) => candidate.localName === name);
    if (field === undefined) throw new Error(`${schema.typeName} has no field ${name}`);
    numbers[name] = field.number;
  }
  return numbers;
}

const responseField = fieldNumbers(GetTraceResponseSchema, ["trace"]);
const treeField = fieldNumbers(TraceTreeSchema, [
  "traceId",
  "rootSpan",
  "spans",
  "totalDurationMs",
  "serviceCount",
  "errorCount",
  "assembledAt",
  "orphanSpanIds",
]);
const spanField = fieldNumbers(SpanSchema, [
  "spanId",
  "traceId",
  "parentSpanId",
  "serviceName",
  "operationName",
  "kind",
  "status",
  "startTime",
  "endTime",
  "durationMs",
]);

// The stored tags and logs are copied into Span messages as they are.
const attrsField = fieldNumbers(SpanSchema, ["tags", "logs"]);
if (attrsField.tags !== storedSpanField.tags || attrsField.logs !== storedSpanField.logs) {
  throw new Error("the API's Span.tags and Span.logs field numbers differ from the stored ones");
}

/** Answers up to this size reuse the writer's buffer; a larger one is let go with its writer. */
const keptBufferBytes = 1 << 20;
/** Reused: `finish()` copies the bytes out and resets it. */
let writer = new BinaryWriter();

/**
 * The encoded `GetTraceResponse` of an assembled trace.
 *
 * @throws Error when a stored span's tags or logs are corrupt (see `encodedAttrsOf`)
 */
export function encodeGetTraceResponse(trace: TraceTree): Uint8Array {
  try {
    writer.tag(responseField.trace, WireType.LengthDelimited).fork();
    writeString(treeField.traceId, trace.traceId);
    writeSpan(treeField.rootSpan, trace.root);
    for (const span of trace.spans) writeSpan(treeField.spans, span);
    writeInt(treeField.totalDurationMs, trace.totalDurationMs);
    writeInt(treeField.serviceCount, trace.serviceCount);
    writeInt(treeField.errorCount, trace.errorCount);
    writeTimestamp(writer, treeField.assembledAt, BigInt(trace.assembledAtMs) * 1_000_000n);
    for (const orphan of trace.orphans) writer.tag(treeField.orphanSpanIds, WireType.LengthDelimited).string(orphan.spanId);
    writer.join();
  } catch (error) {
    writer = new BinaryWriter(); // the next answer must not start with this one's bytes
    throw error;
  }
  const bytes = writer.finish();
  if (bytes.length > keptBufferBytes) writer = new BinaryWriter();
  return bytes;
}

/** A `Span` field, as `renderSpan` would build it, tags and logs copied from the store when stored. */
function writeSpan(field: number, span: Span): void {
  writer.tag(field, WireType.LengthDelimited).fork();
  writeString(spanField.spanId, span.spanId);
  writeString(spanField.traceId, span.traceId);
  writeString(spanField.parentSpanId, span.parentSpanId ?? "");
  writeString(spanField.serviceName, span.serviceName);
  writeString(spanField.operationName, span.operationName);
  writeInt(spanField.kind, kindEnum[span.kind]);
  writeInt(spanField.status, statusEnum[span.status]);
  writeTimestamp(writer, spanField.startTime, span.startTimeNs);
  writeTimestamp(writer, spanField.endTime, span.endTimeNs);
  writer.raw(encodedAttrsOf(span));
  writeInt(spanField.durationMs, durationMs(span));
  writer.join();
}

/** A proto3 string field; omitted when empty, as protobuf-es omits it. */
function writeString(field: number, value: string): void {
  if (value !== "") writer.tag(field, WireType.LengthDelimited).string(value);
}

/** A proto3 integer or enum field (int32 and int64 share the varint encoding); omitted when zero. */
function writeInt(field: number, value: number): void {
  if (value !== 0) writer.tag(field, WireType.Varint).int64(value);
}
