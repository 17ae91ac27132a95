import { create, fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { GetTraceResponseSchema, TraceTreeSchema } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { assembleTrace } from "../../../server/core/tracing/assembly.js";
import type { Span, TraceTree } from "../../../server/core/tracing/model.js";
import { renderSpan, timestampFromNs } from "../../../server/rpc/tracing-mapping.js";
import { encodeGetTraceResponse } from "../../../server/rpc/tracing-wire.js";
import { encodeAttrs, kindCode, spanFromRow, statusCode } from "../../../server/store/tracing-codec.js";
import { nowMs, span } from "./builders.js";

/** GetTrace's answer built from messages and encoded by protobuf-es: what the hand-written encoding must equal. */
function expectedResponse(trace: TraceTree) {
  return create(GetTraceResponseSchema, {
    trace: create(TraceTreeSchema, {
      traceId: trace.traceId,
      rootSpan: renderSpan(trace.root),
      spans: trace.spans.map(renderSpan),
      totalDurationMs: BigInt(trace.totalDurationMs),
      serviceCount: trace.serviceCount,
      errorCount: trace.errorCount,
      assembledAt: timestampFromNs(BigInt(trace.assembledAtMs) * 1_000_000n),
      orphanSpanIds: trace.orphans.map((orphan) => orphan.spanId),
    }),
  });
}

/** A trace with every kind of field: tags and logs, errors, an orphan, a zero-length span, several services. */
const spans: Span[] = [
  { ...span({ id: "root", start: 0, end: 120.5, service: "gateway" }), tags: { "http.route": "/checkout", "ключ": "✓" } },
  { ...span({ id: "a", parent: "root", start: 1, end: 41, service: "payments", kind: "client", status: "error" }), logs: [{ timeNs: 1_700_000_000_010_000_001n, fields: { event: "retry" } }] },
  span({ id: "b", parent: "root", start: 41, end: 41, service: "stock", kind: "internal", status: "timeout" }),
  { ...span({ id: "p", parent: "root", start: 50, end: 51, kind: "producer", status: "cancelled" }), tags: { empty: "" }, logs: [{ timeNs: 0n, fields: {} }] },
  span({ id: "lost", parent: "never-arrived", start: 2, end: 3, kind: "consumer" }),
];

/** The spans as the store reads them back: tags and logs kept encoded. */
function stored(list: readonly Span[], legacy = false): Span[] {
  return list.map((source) => {
    const attrs = legacy
      ? JSON.stringify({ t: source.tags, l: source.logs.map((log) => [String(log.timeNs), log.fields]) })
      : encodeAttrs(source);
    return spanFromRow(source.traceId, [
      source.spanId,
      source.parentSpanId ?? null,
      source.serviceName,
      source.operationName,
      BigInt(kindCode(source.kind)),
      BigInt(statusCode(source.status)),
      source.startTimeNs,
      source.endTimeNs,
      attrs,
    ]);
  });
}

describe("encodeGetTraceResponse", () => {
  it.each([
    ["decoded spans", spans],
    ["spans read from the store", stored(spans)],
    ["spans stored as JSON by earlier versions", stored(spans, true)],
  ])("decodes to the message protobuf-es would encode, for %s", (_, list) => {
    const trace = assembleTrace(list, nowMs);
    expect(trace.orphans.map((orphan) => orphan.spanId)).toEqual(["lost"]);
    const decoded = fromBinary(GetTraceResponseSchema, encodeGetTraceResponse(trace));
    expect(decoded).toEqual(expectedResponse(assembleTrace(spans, nowMs)));
  });

  it("fails on a stored span's corrupt bytes without leaving them to the next answer", () => {
    const corrupt = stored(spans).map((s, i) =>
      i === 2
        ? spanFromRow(s.traceId, [s.spanId, s.parentSpanId ?? null, s.serviceName, s.operationName, 0n, 1n, s.startTimeNs, s.endTimeNs, new Uint8Array([0x0a, 0x01, 0x78])])
        : s,
    );
    expect(() => encodeGetTraceResponse(assembleTrace(corrupt, nowMs))).toThrow(/corrupt tags or logs/);
    const next = fromBinary(GetTraceResponseSchema, encodeGetTraceResponse(assembleTrace(spans, nowMs)));
    expect(next).toEqual(expectedResponse(assembleTrace(spans, nowMs)));
  });

  it("encodes each call on its own (the shared writer keeps nothing between calls)", () => {
    const first = encodeGetTraceResponse(assembleTrace(spans, nowMs));
    const other = encodeGetTraceResponse(assembleTrace([span({ id: "x", start: 0, end: 1 })], nowMs + 1));
    expect(encodeGetTraceResponse(assembleTrace(spans, nowMs))).toEqual(first);
    expect(fromBinary(GetTraceResponseSchema, other).trace?.spans.map((s) => s.spanId)).toEqual(["x"]);
  });
});
