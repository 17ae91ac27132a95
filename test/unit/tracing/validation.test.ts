import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import {
  missingSpanFields,
  validateSpanId,
  validateSpanInput,
  validateTraceId,
  type SpanInput,
} from "../../../server/core/tracing/validation.js";
import { thrown } from "./builders.js";

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
const spanId = "00f067aa0ba902b7";
const parentId = "53995c3f42cd8ad8";

/** A valid span input; override any field. */
function input(overrides: Partial<SpanInput> = {}): SpanInput {
  return {
    spanId,
    traceId,
    parentSpanId: parentId,
    serviceName: "checkout",
    operationName: "GET /cart",
    kind: "server",
    status: "ok",
    startTimeNs: 1_700_000_000_000_000_000n,
    endTimeNs: 1_700_000_000_005_000_000n,
    tags: { "http.method": "GET" },
    logs: [{ timeNs: 1_700_000_000_001_000_000n, fields: { event: "cache-miss" } }],
    ...overrides,
  };
}

/** An input without the named fields. */
function without(...fields: (keyof SpanInput)[]): SpanInput {
  const copy: Record<string, unknown> = { ...input() };
  for (const field of fields) delete copy[field];
  return copy as SpanInput;
}

function entries(count: number, valueChars = 1): Record<string, string> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, "v".repeat(valueChars)]));
}

function expectInvalid(fn: () => unknown, field: string, reason: string | RegExp): void {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(InvalidFieldError);
  expect((error as InvalidFieldError).field).toBe(field);
  expect((error as InvalidFieldError).reason).toMatch(reason);
}

describe("validateSpanInput accepts", () => {
  it.each<[string, Partial<SpanInput>]>([
    ["a complete span", {}],
    ["a root span (no parent)", { parentSpanId: undefined }],
    ["a zero-length span (end = start)", { endTimeNs: 1_700_000_000_000_000_000n }],
    ["128 tags", { tags: entries(128) }],
    ["a tag key of 256 characters", { tags: { ["k".repeat(256)]: "v" } }],
    ["a tag value of 4096 characters", { tags: { k: "v".repeat(4096) } }],
    ["an empty tag value", { tags: { k: "" } }],
    ["128 logs", { logs: Array.from({ length: 128 }, () => ({ timeNs: 1n, fields: {} })) }],
    ["a service_name of 256 characters", { serviceName: "s".repeat(256) }],
    ["an operation_name of 1024 characters", { operationName: "o".repeat(1024) }],
    ["the largest int64 end time", { endTimeNs: 9_223_372_036_854_775_807n }],
  ])("%s", (_, overrides) => {
    expect(() => validateSpanInput(input(overrides))).not.toThrow();
  });

  it("returns the span with kind defaulted to internal and tags and logs to empty", () => {
    const span = validateSpanInput(without("kind", "tags", "logs", "parentSpanId"));
    expect(span).toEqual({
      spanId,
      traceId,
      serviceName: "checkout",
      operationName: "GET /cart",
      kind: "internal",
      status: "ok",
      startTimeNs: 1_700_000_000_000_000_000n,
      endTimeNs: 1_700_000_000_005_000_000n,
      tags: {},
      logs: [],
    });
    expect("parentSpanId" in span).toBe(false);
  });

  it("reads an empty parent_span_id as none (the proto3 default)", () => {
    expect(validateSpanInput(input({ parentSpanId: "" })).parentSpanId).toBeUndefined();
  });
});

describe("validateSpanInput names every missing required field in one message", () => {
  it.each<[string, SpanInput, string[]]>([
    ["span_id absent", without("spanId"), ["span_id"]],
    ["status absent", without("status"), ["status"]],
    ["trace_id and end_time absent", without("traceId", "endTimeNs"), ["trace_id", "end_time"]],
    ["empty strings count as absent", input({ serviceName: "", operationName: "" }), ["service_name", "operation_name"]],
    ["a zero time counts as absent", input({ startTimeNs: 0n }), ["start_time"]],
    [
      "everything absent",
      {},
      ["span_id", "trace_id", "service_name", "operation_name", "start_time", "end_time", "status"],
    ],
  ])("%s", (_, spanInput, missing) => {
    expect(missingSpanFields(spanInput)).toEqual(missing);
    expectInvalid(() => validateSpanInput(spanInput, "spans[2]"), "spans[2]", `is missing required fields: ${missing.join(", ")}`);
  });

  it("does not require kind, parent_span_id, tags or logs", () => {
    expect(missingSpanFields(without("kind", "parentSpanId", "tags", "logs"))).toEqual([]);
  });
});

describe("validateSpanInput rejects, naming the field and the rule", () => {
  it.each<[string, Partial<SpanInput>, string, string | RegExp]>([
    ["an upper-case trace_id", { traceId: traceId.toUpperCase() }, "span.trace_id", /32 lowercase hex digits, got "4BF9/],
    ["a trace_id of 31 digits", { traceId: traceId.slice(1) }, "span.trace_id", /32 lowercase hex digits/],
    ["a trace_id of 33 digits", { traceId: `${traceId}0` }, "span.trace_id", /32 lowercase hex digits/],
    ["an all-zero trace_id", { traceId: "0".repeat(32) }, "span.trace_id", "must not be all zeros"],
    ["a non-hex span_id", { spanId: "00f067aa0ba902bg" }, "span.span_id", /16 lowercase hex digits, got "00f067aa0ba902bg"/],
    ["a 64-bit span_id given as a 32-digit id", { spanId: traceId }, "span.span_id", /16 lowercase hex digits/],
    ["an all-zero span_id", { spanId: "0".repeat(16) }, "span.span_id", "must not be all zeros"],
    ["a malformed parent_span_id", { parentSpanId: "xyz" }, "span.parent_span_id", /16 lowercase hex digits/],
    ["an all-zero parent_span_id", { parentSpanId: "0".repeat(16) }, "span.parent_span_id", "must not be all zeros"],
    ["a span that is its own parent", { parentSpanId: spanId }, "span.parent_span_id", /must differ from span_id/],
    [
      "an end before the start",
      { endTimeNs: 1_699_999_999_999_999_999n },
      "span.end_time",
      /must not be before start_time, got end 1699999999999999999 ns < start 1700000000000000000 ns/,
    ],
    ["a negative start time", { startTimeNs: -1n }, "span.start_time", /since the Unix epoch, got -1$/],
    ["an end time beyond int64", { endTimeNs: 9_223_372_036_854_775_808n }, "span.end_time", /got 9223372036854775808$/],
    ["a service_name of 257 characters", { serviceName: "s".repeat(257) }, "span.service_name", "must be at most 256 characters, got 257"],
    ["an operation_name of 1025 characters", { operationName: "o".repeat(1025) }, "span.operation_name", /at most 1024/],
    ["an unknown kind", { kind: "batch" as never }, "span.kind", /must be one of server, client, producer, consumer, internal, got "batch"/],
    ["an unknown status", { status: "degraded" as never }, "span.status", /got "degraded"/],
    ["129 tags", { tags: entries(129) }, "span.tags", "must have at most 128 entries, got 129"],
    ["an empty tag key", { tags: { "": "v" } }, 'span.tags[""]', /key must be 1..256 characters, got 0/],
    [
      "a tag key of 257 characters (quoted cut to 64)",
      { tags: { ["k".repeat(257)]: "v" } },
      `span.tags["${"k".repeat(64)}…"]`,
      /got 257/,
    ],
    ["a tag value of 4097 characters", { tags: { k: "v".repeat(4097) } }, 'span.tags["k"]', "value must be at most 4096 characters, got 4097"],
    [
      "129 logs",
      { logs: Array.from({ length: 129 }, () => ({ timeNs: 1n, fields: {} })) },
      "span.logs",
      "must have at most 128 entries, got 129",
    ],
    ["a log without a time", { logs: [{ timeNs: 0n, fields: {} }] }, "span.logs[0].time", /got 0$/],
    [
      "a log field value of 4097 characters",
      { logs: [{ timeNs: 1n, fields: {} }, { timeNs: 1n, fields: { m: "x".repeat(4097) } }] },
      'span.logs[1].fields["m"]',
      /at most 4096/,
    ],
  ])("%s", (_, overrides, field, reason) => {
    expectInvalid(() => validateSpanInput(input(overrides)), field, reason);
  });

  it("prefixes the field path it is given", () => {
    expectInvalid(() => validateSpanInput(input({ traceId: "x" }), "spans[7]"), "spans[7].trace_id", /32 lowercase/);
  });
});

describe("id checks for query requests", () => {
  it.each<[string, () => void, boolean]>([
    ["a valid trace id", () => validateTraceId(traceId, "trace_id"), true],
    ["an empty trace id", () => validateTraceId("", "trace_id"), false],
    ["a valid span id", () => validateSpanId(spanId, "span_id"), true],
    ["a trace id as a span id", () => validateSpanId(traceId, "span_id"), false],
  ])("%s", (_, check, valid) => {
    if (valid) expect(check).not.toThrow();
    else expect(check).toThrow(InvalidFieldError);
  });
});
