import { create, fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { SpanSchema } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import type { Span } from "../../../server/core/tracing/model.js";
import { renderSpan } from "../../../server/rpc/tracing-mapping.js";
import { encodeAttrs, encodedAttrsOf, kindCode, spanFromRow, statusCode, type SpanRow } from "../../../server/store/tracing-codec.js";
import { span } from "../tracing/builders.js";

/** A span with awkward tags and logs: unicode, empty values, a "__proto__" key, logs before 1970 and at 0. */
const rich: Span = {
  ...span({ id: "a1", parent: "root", start: 1, end: 2.5, kind: "producer", status: "timeout" }),
  tags: { "http.method": "GET", "ключ": "значение ✓", empty: "", ["__proto__"]: "not a prototype" },
  logs: [
    { timeNs: 1_700_000_000_123_456_789n, fields: { event: "retry", attempt: "2" } },
    { timeNs: 0n, fields: {} },
    { timeNs: -1_500_000_001n, fields: { "": "unnamed" } },
  ],
};

/** The `spans` row of a span, as the store reads it raw. */
function rowOf(source: Span, attrs: SpanRow[8]): SpanRow {
  return [source.spanId, source.parentSpanId ?? null, source.serviceName, source.operationName, BigInt(kindCode(source.kind)), BigInt(statusCode(source.status)), source.startTimeNs, source.endTimeNs, attrs];
}

/** A span read back as a plain value: its tags and logs are decoded on access. */
function valueOf(stored: Span): Span {
  return { ...stored, tags: stored.tags, logs: stored.logs };
}

describe("the attrs column", () => {
  it("is the encoding of Span fields 10 and 11: protobuf-es decodes it to the rendered tags and logs", () => {
    const bytes = encodeAttrs(rich)!;
    const expected = renderSpan(rich);
    const decoded = fromBinary(SpanSchema, bytes);
    expect(decoded).toEqual(create(SpanSchema, { tags: expected.tags, logs: expected.logs }));
  });

  it("is NULL for a span with neither tags nor logs", () => {
    expect(encodeAttrs({ tags: {}, logs: [] })).toBeNull();
    expect(encodeAttrs({ tags: {}, logs: [{ timeNs: 0n, fields: {} }] })).not.toBeNull();
  });

  it("reads back to the same tags and logs, from a BLOB, from the JSON text of earlier versions, and from NULL", () => {
    const fromBlob = spanFromRow(rich.traceId, rowOf(rich, encodeAttrs(rich)));
    expect(valueOf(fromBlob)).toStrictEqual(rich);
    expect(Object.keys(fromBlob.tags)).toEqual(Object.keys(rich.tags));
    expect(Object.getPrototypeOf(fromBlob.tags)).toBe(Object.prototype);

    const legacy = JSON.stringify({ t: { "http.method": "GET" }, l: [["1700000000123456789", { event: "retry" }]] });
    const fromJson = spanFromRow(rich.traceId, rowOf(rich, legacy));
    expect(fromJson.tags).toStrictEqual({ "http.method": "GET" });
    expect(fromJson.logs).toStrictEqual([{ timeNs: 1_700_000_000_123_456_789n, fields: { event: "retry" } }]);

    const bare = spanFromRow(rich.traceId, rowOf(rich, null));
    expect(valueOf(bare)).toStrictEqual({ ...rich, tags: {}, logs: [] });
  });

  it("decodes a stored span's tags and logs on first access, not when the row is read, and keeps them", () => {
    const stored = spanFromRow(rich.traceId, rowOf(rich, encodeAttrs(rich)));
    expect(stored.tags).toBe(stored.tags);
    expect(stored.logs).toBe(stored.logs);
    // A field 10 whose length runs past the end: reading the row is fine, decoding is not.
    const corrupt = spanFromRow(rich.traceId, rowOf(rich, new Uint8Array([0x52, 0x7f, 0x0a])));
    expect(corrupt.spanId).toBe(rich.spanId);
    expect(() => corrupt.tags).toThrow();
  });

  it("refuses to hand over stored bytes that are not tags and logs fields, naming the span", () => {
    const message = `span ${rich.traceId}/${rich.spanId} has corrupt tags or logs in the store`;
    const truncated = new Uint8Array([0x52, 0x7f, 0x0a]);
    const otherField = new Uint8Array([0x0a, 0x01, 0x78]); // field 1 (span_id) would clobber the answer's
    const halfVarint = new Uint8Array([0x52, 0x80]);
    for (const bytes of [truncated, otherField, halfVarint]) {
      expect(() => encodedAttrsOf(spanFromRow(rich.traceId, rowOf(rich, bytes)))).toThrow(message);
    }
  });

  it("hands a stored span's bytes to responses as they are, and encodes any other span", () => {
    const bytes = encodeAttrs(rich)!;
    expect(encodedAttrsOf(spanFromRow(rich.traceId, rowOf(rich, bytes)))).toBe(bytes);
    expect(encodedAttrsOf(rich)).toEqual(bytes);
    const legacy = JSON.stringify({ t: { k: "v" } });
    expect(fromBinary(SpanSchema, encodedAttrsOf(spanFromRow(rich.traceId, rowOf(rich, legacy)))).tags).toEqual({ k: "v" });
    expect(encodedAttrsOf(spanFromRow(rich.traceId, rowOf(rich, null)))).toHaveLength(0);
    expect(encodedAttrsOf({ ...rich, tags: {}, logs: [] })).toHaveLength(0);
  });
});
