import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ExportTraceServiceRequestSchema,
  type ExportTraceServiceRequest,
} from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { AnyValueSchema, type InstrumentationScopeSchema, type KeyValueSchema } from "../../../gen/opentelemetry/proto/common/v1/common_pb.js";
import {
  Span_SpanKind,
  Status_StatusCode,
  type ResourceSpansSchema,
  type Span as OtlpSpan,
  type SpanSchema,
} from "../../../gen/opentelemetry/proto/trace/v1/trace_pb.js";
import type { SpanKind, SpanStatus } from "../../../server/core/tracing/model.js";
import { spanInputLimits } from "../../../server/core/tracing/validation.js";
import {
  renderAnyValue,
  spansFromExportRequest,
  summarizeRejections,
  unknownServiceName,
} from "../../../server/rpc/otlp-mapping.js";

/** A span init object (never a built message, so it can be spread). */
type SpanInit = Exclude<MessageInitShape<typeof SpanSchema>, OtlpSpan>;
type KeyValueInit = MessageInitShape<typeof KeyValueSchema>;
type ResourceSpansInit = MessageInitShape<typeof ResourceSpansSchema>;
type ScopeInit = MessageInitShape<typeof InstrumentationScopeSchema>;

const traceHex = "4bf92f3577b34da6a3ce929d0e0e4736";
const spanHex = "00f067aa0ba902b7";
const parentHex = "53995c3f42cd8ad8";
const startNs = 1_700_000_000_000_000_000n;

function bytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/** A string attribute. */
function attr(key: string, value: string): KeyValueInit {
  return { key, value: { value: { case: "stringValue", value } } };
}

/** A valid OTLP span; override any field. */
function otlpSpan(overrides: SpanInit = {}): SpanInit {
  return {
    traceId: bytes(traceHex),
    spanId: bytes(spanHex),
    parentSpanId: bytes(parentHex),
    name: "GET /cart",
    kind: Span_SpanKind.SERVER,
    startTimeUnixNano: startNs,
    endTimeUnixNano: startNs + 5_000_000n,
    status: { code: Status_StatusCode.OK },
    ...overrides,
  };
}

/** Where a test's spans come from; the default resource has `service.name` = checkout. */
interface Origin {
  readonly resource?: ResourceSpansInit["resource"];
  readonly scope?: ScopeInit;
}

/** A request with one resource and one scope. */
function request(spans: SpanInit[], origin: Origin = {}): ExportTraceServiceRequest {
  const resource = "resource" in origin ? origin.resource : { attributes: [attr("service.name", "checkout")] };
  return create(ExportTraceServiceRequestSchema, {
    resourceSpans: [{ ...(resource !== undefined ? { resource } : {}), scopeSpans: [{ scope: origin.scope, spans }] }],
  });
}

/** The one span a one-span request maps to. */
function mapOne(span: SpanInit, origin: Origin = {}) {
  const result = spansFromExportRequest(request([span], origin));
  expect(result.rejected).toBe(0);
  expect(result.spans).toHaveLength(1);
  return result.spans[0]!;
}

describe("spansFromExportRequest", () => {
  it("maps every field of a valid span", () => {
    const span = mapOne(
      otlpSpan({
        attributes: [attr("http.method", "GET")],
        events: [{ timeUnixNano: startNs + 1_000_000n, name: "cache-miss", attributes: [attr("key", "cart:7")] }],
      }),
    );
    expect(span).toEqual({
      traceId: traceHex,
      spanId: spanHex,
      parentSpanId: parentHex,
      serviceName: "checkout",
      operationName: "GET /cart",
      kind: "server",
      status: "ok",
      startTimeNs: startNs,
      endTimeNs: startNs + 5_000_000n,
      tags: { "service.name": "checkout", "http.method": "GET" },
      logs: [{ timeNs: startNs + 1_000_000n, fields: { event: "cache-miss", key: "cart:7" } }],
    });
  });

  it("answers an empty request with no spans and no rejection", () => {
    expect(spansFromExportRequest(create(ExportTraceServiceRequestSchema))).toEqual({ spans: [], rejected: 0 });
  });

  it("reads an empty parent_span_id as a root span", () => {
    const span = mapOne(otlpSpan({ parentSpanId: new Uint8Array(0) }));
    expect(span).not.toHaveProperty("parentSpanId");
  });

  it("renders ids as lowercase hex", () => {
    const span = mapOne(otlpSpan({ traceId: bytes("ABCDEF00000000000000000000000001"), spanId: bytes("FF00000000000001") }));
    expect(span.traceId).toBe("abcdef00000000000000000000000001");
    expect(span.spanId).toBe("ff00000000000001");
  });

  it.each<[string, Span_SpanKind, SpanKind]>([
    ["UNSPECIFIED reads as internal", Span_SpanKind.UNSPECIFIED, "internal"],
    ["INTERNAL", Span_SpanKind.INTERNAL, "internal"],
    ["SERVER", Span_SpanKind.SERVER, "server"],
    ["CLIENT", Span_SpanKind.CLIENT, "client"],
    ["PRODUCER", Span_SpanKind.PRODUCER, "producer"],
    ["CONSUMER", Span_SpanKind.CONSUMER, "consumer"],
  ])("maps kind %s", (_name, kind, expected) => {
    expect(mapOne(otlpSpan({ kind })).kind).toBe(expected);
  });

  it.each<[string, SpanInit["status"], SpanStatus]>([
    ["no status as ok", undefined, "ok"],
    ["UNSET as ok", { code: Status_StatusCode.UNSET }, "ok"],
    ["OK as ok", { code: Status_StatusCode.OK }, "ok"],
    ["ERROR as error", { code: Status_StatusCode.ERROR }, "error"],
  ])("maps status %s", (_name, status, expected) => {
    const init = otlpSpan();
    delete init.status;
    expect(mapOne(status === undefined ? init : { ...init, status }).status).toBe(expected);
  });

  it("keeps a status message as otel.status_description", () => {
    const span = mapOne(otlpSpan({ status: { code: Status_StatusCode.ERROR, message: "connection refused" } }));
    expect(span.tags["otel.status_description"]).toBe("connection refused");
  });

  it.each<[string, Origin, string]>([
    ["service.name of the resource", { resource: { attributes: [attr("service.name", "cart")] } }, "cart"],
    ["unknown_service without service.name", { resource: { attributes: [attr("host.name", "h1")] } }, unknownServiceName],
    ["unknown_service without a resource", { resource: undefined }, unknownServiceName],
    ["unknown_service for an empty service.name", { resource: { attributes: [attr("service.name", "")] } }, unknownServiceName],
    [
      "a non-string service.name rendered",
      { resource: { attributes: [{ key: "service.name", value: { value: { case: "intValue", value: 7n } } }] } },
      "7",
    ],
  ])("takes the service name from %s", (_name, origin, expected) => {
    expect(mapOne(otlpSpan(), origin).serviceName).toBe(expected);
  });

  it("merges resource, scope and span attributes, the nearer level winning", () => {
    const span = mapOne(otlpSpan({ attributes: [attr("level", "span"), attr("only.span", "s")] }), {
      resource: {
        attributes: [attr("service.name", "checkout"), attr("level", "resource"), attr("only.resource", "r")],
      },
      scope: {
        name: "@opentelemetry/instrumentation-http",
        version: "0.57.0",
        attributes: [attr("level", "scope"), attr("only.scope", "c"), attr("otel.scope.name", "overridden")],
      },
    });
    expect(span.tags).toEqual({
      "service.name": "checkout",
      level: "span",
      "only.resource": "r",
      "only.scope": "c",
      "only.span": "s",
      "otel.scope.name": "@opentelemetry/instrumentation-http",
      "otel.scope.version": "0.57.0",
    });
  });

  it("adds no otel.scope.* tags for an unnamed scope", () => {
    const span = mapOne(otlpSpan(), { scope: { name: "", version: "" } });
    expect(Object.keys(span.tags)).toEqual(["service.name"]);
  });

  it("lets a later duplicate attribute key win", () => {
    expect(mapOne(otlpSpan({ attributes: [attr("k", "first"), attr("k", "second")] })).tags["k"]).toBe("second");
  });

  it("keeps a __proto__ attribute as an ordinary tag", () => {
    const span = mapOne(otlpSpan({ attributes: [attr("__proto__", "x")] }));
    expect(Object.getPrototypeOf(span.tags)).toBe(Object.prototype);
    expect(Object.entries(span.tags)).toContainEqual(["__proto__", "x"]);
  });

  it("skips a Profiling-only key_strindex attribute", () => {
    const span = mapOne(otlpSpan({ attributes: [{ key: "", keyStrindex: 3, value: { value: { case: "stringValue", value: "x" } } }] }));
    expect(Object.keys(span.tags)).toEqual(["service.name"]);
  });

  it("maps events to logs in order, the event name winning over an attribute named event", () => {
    const span = mapOne(
      otlpSpan({
        events: [
          { timeUnixNano: startNs + 1n, name: "exception", attributes: [attr("exception.type", "TypeError")] },
          { timeUnixNano: startNs + 2n, name: "retry", attributes: [attr("event", "shadowed")] },
          { timeUnixNano: startNs + 3n, name: "" },
        ],
      }),
    );
    expect(span.logs).toEqual([
      { timeNs: startNs + 1n, fields: { event: "exception", "exception.type": "TypeError" } },
      { timeNs: startNs + 2n, fields: { event: "retry" } },
      { timeNs: startNs + 3n, fields: { event: "" } },
    ]);
  });

  it("ignores links, trace_state and flags", () => {
    const span = mapOne(
      otlpSpan({ traceState: "vendor=1", flags: 0x301, links: [{ traceId: bytes(traceHex), spanId: bytes(parentHex) }] }),
    );
    expect(span.tags).toEqual({ "service.name": "checkout" });
  });

  describe("size limits truncate instead of rejecting", () => {
    const { maxTags, maxTagValueChars, maxTagKeyChars, maxLogs, maxLogFields } = spanInputLimits;

    it("cuts a long value to the limit, ending in …", () => {
      const trace = "x".repeat(maxTagValueChars + 500);
      const span = mapOne(otlpSpan({ attributes: [attr("exception.stacktrace", trace)] }));
      const value = span.tags["exception.stacktrace"]!;
      expect(value).toHaveLength(maxTagValueChars);
      expect(value.endsWith("…")).toBe(true);
      expect(value.slice(0, -1)).toBe(trace.slice(0, maxTagValueChars - 1));
    });

    it("keeps span attributes over resource ones past the tag limit and counts what it left out", () => {
      const resourceAttrs = Array.from({ length: 50 }, (_, i) => attr(`r${i}`, "v"));
      const spanAttrs = Array.from({ length: maxTags + 10 }, (_, i) => attr(`s${i}`, "v"));
      const result = spansFromExportRequest(
        create(ExportTraceServiceRequestSchema, {
          resourceSpans: [{ resource: { attributes: [attr("service.name", "checkout"), ...resourceAttrs] }, scopeSpans: [{ spans: [otlpSpan({ attributes: spanAttrs })] }] }],
        }),
      );
      const tags = result.spans[0]!.tags;
      expect(Object.keys(tags)).toHaveLength(maxTags);
      expect(tags["s0"]).toBe("v");
      expect(tags[`s${maxTags - 2}`]).toBe("v");
      expect(tags[`s${maxTags - 1}`]).toBeUndefined();
      expect(tags["r0"]).toBeUndefined();
      // 128 + 10 span attributes, 51 resource ones; 127 kept.
      expect(tags["otel.dropped_attributes_count"]).toBe(String(maxTags + 10 + 51 - (maxTags - 1)));
    });

    it("drops attributes with an empty or too long key and counts them", () => {
      const span = mapOne(otlpSpan({ attributes: [attr("", "v"), attr("k".repeat(maxTagKeyChars + 1), "v"), attr("ok", "v")] }));
      expect(span.tags).toEqual({ "service.name": "checkout", ok: "v", "otel.dropped_attributes_count": "2" });
    });

    it("keeps the first events past the log limit and counts the rest", () => {
      const events = Array.from({ length: maxLogs + 3 }, (_, i) => ({ timeUnixNano: startNs + BigInt(i + 1), name: `e${i}` }));
      const span = mapOne(otlpSpan({ events }));
      expect(span.logs).toHaveLength(maxLogs);
      expect(span.logs[0]!.fields.event).toBe("e0");
      expect(span.tags["otel.dropped_events_count"]).toBe("3");
    });

    it("gives an event without a time its span's start time", () => {
      const span = mapOne(otlpSpan({ events: [{ name: "e" }] }));
      expect(span.logs).toEqual([{ timeNs: span.startTimeNs, fields: { event: "e" } }]);
    });

    it("bounds an event's fields, keeping its name", () => {
      const attributes = Array.from({ length: maxLogFields + 5 }, (_, i) => attr(`a${i}`, "v"));
      const span = mapOne(otlpSpan({ events: [{ timeUnixNano: startNs + 1n, name: "big", attributes }] }));
      const fields = span.logs[0]!.fields;
      expect(Object.keys(fields)).toHaveLength(maxLogFields);
      expect(fields.event).toBe("big");
      expect(fields["otel.dropped_attributes_count"]).toBe("7");
    });
  });

  describe("invalid spans", () => {
    const field = "resource_spans[0].scope_spans[0].spans[0]";
    it.each<[string, SpanInit, string]>([
      ["an empty trace_id", { traceId: new Uint8Array(0) }, `${field} is missing required fields: trace_id`],
      ["a 3-byte trace_id", { traceId: bytes("abcdef") }, `${field}.trace_id must be 16 bytes, got 3`],
      ["a 32-byte trace_id", { traceId: bytes(traceHex + traceHex) }, `${field}.trace_id must be 16 bytes, got 32`],
      ["an all-zero trace_id", { traceId: new Uint8Array(16) }, `${field}.trace_id must not be all zeros`],
      ["an empty span_id", { spanId: new Uint8Array(0) }, `${field} is missing required fields: span_id`],
      ["a 16-byte span_id", { spanId: bytes(traceHex) }, `${field}.span_id must be 8 bytes, got 16`],
      ["an all-zero span_id", { spanId: new Uint8Array(8) }, `${field}.span_id must not be all zeros`],
      ["a 4-byte parent_span_id", { parentSpanId: bytes("01020304") }, `${field}.parent_span_id must be 8 bytes, got 4`],
      ["a parent_span_id equal to span_id", { parentSpanId: bytes(spanHex) }, `${field}.parent_span_id must differ from span_id`],
      ["an empty name", { name: "" }, `${field} is missing required fields: name`],
      ["no start time", { startTimeUnixNano: 0n }, `${field} is missing required fields: start_time_unix_nano`],
      ["no times", { startTimeUnixNano: 0n, endTimeUnixNano: 0n }, "missing required fields: start_time_unix_nano, end_time_unix_nano"],
      ["an end before the start", { endTimeUnixNano: startNs - 1n }, `${field}.end_time_unix_nano must not be before start_time_unix_nano`],
      ["a start past int64", { startTimeUnixNano: 2n ** 63n, endTimeUnixNano: 2n ** 63n }, `${field}.start_time_unix_nano must be 1..`],
      ["an unknown kind", { kind: 9 as Span_SpanKind }, `${field}.kind must be a known SpanKind, got 9`],
      ["an unknown status code", { status: { code: 7 as Status_StatusCode } }, `${field}.status.code must be a known StatusCode, got 7`],
      ["a name over the limit", { name: "n".repeat(spanInputLimits.maxOperationNameChars + 1) }, `${field}.name must be at most`],
    ])("rejects %s", (_name, overrides, reason) => {
      const result = spansFromExportRequest(request([otlpSpan(overrides)]));
      expect(result.spans).toEqual([]);
      expect(result.rejected).toBe(1);
      expect(result.errorMessage).toContain(reason);
    });

    it("rejects an invalid span alone and keeps the rest in order", () => {
      const ok = (n: number) => otlpSpan({ spanId: bytes(`00000000000000${n.toString(16).padStart(2, "0")}`), parentSpanId: new Uint8Array(0) });
      const result = spansFromExportRequest(
        create(ExportTraceServiceRequestSchema, {
          resourceSpans: [
            { scopeSpans: [{ spans: [ok(1), otlpSpan({ name: "" }), ok(2)] }, { spans: [otlpSpan({ traceId: bytes("ab") })] }] },
            { scopeSpans: [{ spans: [ok(3)] }] },
          ],
        }),
      );
      expect(result.spans.map((s) => s.spanId)).toEqual(["0000000000000001", "0000000000000002", "0000000000000003"]);
      expect(result.rejected).toBe(2);
      expect(result.errorMessage).toBe(
        "resource_spans[0].scope_spans[0].spans[1] is missing required fields: name; " +
          "resource_spans[0].scope_spans[1].spans[0].trace_id must be 16 bytes, got 1",
      );
    });

    it("quotes the first reasons and counts the rest", () => {
      const result = spansFromExportRequest(request(Array.from({ length: 5 }, () => otlpSpan({ name: "" }))));
      expect(result.rejected).toBe(5);
      expect(result.errorMessage).toMatch(/spans\[0\].*; .*spans\[1\].*; .*spans\[2\].* \(and 2 more rejected spans\)$/);
    });
  });
});

describe("renderAnyValue", () => {
  const kv = (key: string, value: MessageInitShape<typeof AnyValueSchema>["value"]): KeyValueInit => ({ key, value: { value } });
  it.each<[string, MessageInitShape<typeof AnyValueSchema>["value"], string]>([
    ["a string as is", { case: "stringValue", value: "a \"quoted\" text" }, 'a "quoted" text'],
    ["true", { case: "boolValue", value: true }, "true"],
    ["false", { case: "boolValue", value: false }, "false"],
    ["an int", { case: "intValue", value: -42n }, "-42"],
    ["an int64 beyond 2^53 exactly", { case: "intValue", value: 9_007_199_254_740_993n }, "9007199254740993"],
    ["a double", { case: "doubleValue", value: 0.25 }, "0.25"],
    ["a whole double", { case: "doubleValue", value: 3 }, "3"],
    ["NaN", { case: "doubleValue", value: Number.NaN }, "NaN"],
    ["bytes as base64", { case: "bytesValue", value: new Uint8Array([0xde, 0xad, 0xbe, 0xef]) }, "3q2+7w=="],
    ["an empty value as empty", { case: undefined }, ""],
    ["a Profiling string index as empty", { case: "stringValueStrindex", value: 4 }, ""],
    [
      "an array as compact JSON",
      {
        case: "arrayValue",
        value: {
          values: [
            { value: { case: "stringValue", value: "a" } },
            { value: { case: "intValue", value: 9_007_199_254_740_993n } },
            { value: { case: "doubleValue", value: 1.5 } },
            { value: { case: "doubleValue", value: Number.POSITIVE_INFINITY } },
            { value: { case: "boolValue", value: false } },
            { value: { case: "bytesValue", value: new Uint8Array([1]) } },
            {},
          ],
        },
      },
      '["a",9007199254740993,1.5,"Infinity",false,"AQ==",null]',
    ],
    ["an empty array", { case: "arrayValue", value: {} }, "[]"],
    [
      "a kvlist as a compact JSON object, nested",
      {
        case: "kvlistValue",
        value: {
          values: [
            kv("b", { case: "boolValue", value: true }),
            kv("nested", { case: "arrayValue", value: { values: [{ value: { case: "intValue", value: 1n } }] } }),
            { key: "unset" },
            kv("b", { case: "stringValue", value: "later wins" }),
          ],
        },
      },
      '{"b":"later wins","nested":[1],"unset":null}',
    ],
  ])("renders %s", (_name, value, expected) => {
    expect(renderAnyValue(create(AnyValueSchema, { value }))).toBe(expected);
  });

  it("renders an absent value as empty", () => {
    expect(renderAnyValue(undefined)).toBe("");
  });
});

describe("summarizeRejections", () => {
  it.each<[string, string[], number, string]>([
    ["one reason", ["a"], 1, "a"],
    ["every reason when few", ["a", "b", "c"], 3, "a; b; c"],
    ["the first three and a count", ["a", "b", "c", "d"], 9, "a; b; c (and 6 more rejected spans)"],
    ["one reason shared by many spans", ["trace full"], 500, "trace full (and 499 more rejected spans)"],
  ])("quotes %s", (_name, reasons, rejected, expected) => {
    expect(summarizeRejections(reasons, rejected)).toBe(expected);
  });
});
