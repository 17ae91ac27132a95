import { Code, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpanStatus, TraceCollectorService, type Span } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { nextWithin } from "../../fixtures/streams.js";
import {
  callOptions as opts,
  newTraceId,
  rpcError,
  spanId,
  spanMessage,
  traceSpans,
  type SpanInit,
} from "../../fixtures/tracing.js";

const validTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
const validSpan = "00f067aa0ba902b7";

describe.each(["grpc", "connect"] as const)("TraceCollectorService errors over %s", (transport) => {
  let server: TestControlPlane;
  let tracing: Client<typeof TraceCollectorService>;
  /** A trace with spans but no root. */
  let rootless: string;
  /** A complete trace. */
  let complete: string;
  beforeAll(async () => {
    server = await startTestControlPlane();
    tracing = transport === "grpc" ? server.grpc(TraceCollectorService) : server.http(TraceCollectorService);
    rootless = newTraceId();
    complete = newTraceId();
    await tracing.ingestBatch(
      {
        spans: [
          ...traceSpans(rootless, [{ id: "child", parent: "root", start: 1, end: 2 }]),
          ...traceSpans(complete, [
            { id: "root", start: 0, end: 10 },
            { id: "child", parent: "root", start: 1, end: 2 },
          ]),
        ],
      },
      opts,
    );
  });
  afterAll(() => server.stop());

  const span = (overrides: Partial<SpanInit> = {}): Span =>
    spanMessage({ trace: newTraceId(), id: "s", service: "err-svc", start: 0, end: 1 }, overrides);

  async function invalid(promise: Promise<unknown>): Promise<string> {
    const { code, message } = await rpcError(promise);
    expect(code, message).toBe(Code.InvalidArgument);
    return message;
  }

  it("refuses an Ingest without a span", async () => {
    expect(await invalid(tracing.ingest({}, opts))).toBe("span is required");
  });

  it("names every missing required field at once, in the seed's order", async () => {
    const empty = await invalid(tracing.ingest({ span: {} }, opts));
    expect(empty).toBe("span is missing required fields: span_id, trace_id, service_name, operation_name, start_time, end_time, status");
    const some = await invalid(tracing.ingest({ span: span({ traceId: "", status: SpanStatus.UNSPECIFIED }) }, opts));
    expect(some).toBe("span is missing required fields: trace_id, status");
  });

  it.each([
    ["span.trace_id", { traceId: "4BF92F3577B34DA6A3CE929D0E0E4736" }, 'must be 32 lowercase hex digits, got "4BF92F3577B34DA6A3CE929D0E0E4736"'],
    ["span.trace_id", { traceId: "4bf92f3577b34da6" }, "must be 32 lowercase hex digits"],
    ["span.trace_id", { traceId: "0".repeat(32) }, "must not be all zeros"],
    ["span.span_id", { spanId: "xyz" }, 'must be 16 lowercase hex digits, got "xyz"'],
    ["span.span_id", { spanId: "0".repeat(16) }, "must not be all zeros"],
    ["span.parent_span_id", { parentSpanId: "nothex!!nothex!!" }, "must be 16 lowercase hex digits"],
    ["span.parent_span_id", { spanId: validSpan, parentSpanId: validSpan }, "must differ from span_id"],
    ["span.end_time", { startTime: { seconds: 1_700_000_000n, nanos: 5 }, endTime: { seconds: 1_700_000_000n, nanos: 4 } }, "must not be before start_time"],
    ["span.start_time.nanos", { startTime: { seconds: 1_700_000_000n, nanos: 1_000_000_000 } }, "must be 0..999999999"],
    ["span.service_name", { serviceName: "s".repeat(257) }, "must be at most 256 characters, got 257"],
    ['span.tags[""]', { tags: { "": "v" } }, "key must be 1..256 characters, got 0"],
    ["span.logs[1].time", { logs: [{ time: { seconds: 1_700_000_000n }, fields: {} }, { fields: { event: "no time" } }] }, "must be 1..9223372036854775807 ns since the Unix epoch, got 0"],
  ] as [string, Partial<SpanInit>, string][])("refuses a bad %s naming it (%#)", async (field, overrides, rule) => {
    const message = await invalid(tracing.ingest({ span: span(overrides) }, opts));
    expect(message.startsWith(`${field} `), message).toBe(true);
    expect(message).toContain(rule);
  });

  it("accepts a zero-length span (end equal to start)", async () => {
    const res = await tracing.ingest({ span: span({ startTime: { seconds: 1_700_000_000n }, endTime: { seconds: 1_700_000_000n } }) }, opts);
    expect(res.duplicate).toBe(false);
  });

  it("fails a whole batch naming the invalid span by index, and stores none of it", async () => {
    const trace = newTraceId();
    const good = traceSpans(trace, [
      { id: "root", start: 0, end: 10 },
      { id: "child", parent: "root", start: 1, end: 2 },
    ]);
    const badId = await invalid(tracing.ingestBatch({ spans: [good[0]!, good[1]!, span({ traceId: "nope" })] }, opts));
    expect(badId.startsWith("spans[2].trace_id "), badId).toBe(true);
    const missing = await invalid(tracing.ingestBatch({ spans: [good[0]!, span({ operationName: "", endTime: undefined })] }, opts));
    expect(missing).toBe("spans[1] is missing required fields: operation_name, end_time");
    const order = await invalid(
      tracing.ingestBatch(
        { spans: [good[0]!, span({ startTime: { seconds: 1_700_000_001n }, endTime: { seconds: 1_700_000_000n } })] },
        opts,
      ),
    );
    expect(order.startsWith("spans[1].end_time must not be before start_time"), order).toBe(true);
    expect((await rpcError(tracing.getTrace({ traceId: trace }, opts))).code).toBe(Code.NotFound);
    // The same spans alone are stored: nothing of them was before.
    expect(await tracing.ingestBatch({ spans: good }, opts)).toMatchObject({ ingested: 2, duplicates: 0 });
  });

  it("refuses a batch of more than 10,000 spans", async () => {
    const trace = newTraceId();
    const one = spanMessage({ trace, id: "x", start: 0, end: 1 });
    const message = await invalid(tracing.ingestBatch({ spans: Array.from({ length: 10_001 }, () => one) }, opts));
    expect(message).toBe("spans must have at most 10000 entries, got 10001");
  });

  it.each([
    ["GetTrace", (c: Client<typeof TraceCollectorService>) => c.getTrace({ traceId: "abc" }, opts), "trace_id"],
    ["GetTrace", (c: Client<typeof TraceCollectorService>) => c.getTrace({}, opts), "trace_id"],
    ["GetSpan", (c: Client<typeof TraceCollectorService>) => c.getSpan({ traceId: validTrace, spanId: "ABC" }, opts), "span_id"],
    ["GetSpan", (c: Client<typeof TraceCollectorService>) => c.getSpan({ traceId: "0".repeat(32), spanId: validSpan }, opts), "trace_id"],
    ["Children", (c: Client<typeof TraceCollectorService>) => c.children({ traceId: validTrace, parentSpanId: "" }, opts), "parent_span_id"],
    ["LatencyBreakdown", (c: Client<typeof TraceCollectorService>) => c.latencyBreakdown({ traceId: "g".repeat(32) }, opts), "trace_id"],
    ["CriticalPath", (c: Client<typeof TraceCollectorService>) => c.criticalPath({ traceId: "" }, opts), "trace_id"],
    ["Flamegraph", (c: Client<typeof TraceCollectorService>) => c.flamegraph({ traceId: validTrace.slice(1) }, opts), "trace_id"],
    ["SlowSpanAnalysis", (c: Client<typeof TraceCollectorService>) => c.slowSpanAnalysis({ traceId: "x" }, opts), "trace_id"],
  ])("%s refuses a malformed id naming %s (%#)", async (_rpc, call, field) => {
    const message = await invalid(call(tracing));
    expect(message.startsWith(`${field} must`), message).toBe(true);
  });

  it.each([
    ["AnomalousTraces limit 1001", (c: Client<typeof TraceCollectorService>) => c.anomalousTraces({ limit: 1001 }, opts), "limit must be an integer in 1..1000 (0 for 100), got 1001"],
    ["AnomalousTraces limit -1", (c: Client<typeof TraceCollectorService>) => c.anomalousTraces({ limit: -1 }, opts), "limit must be an integer in 1..1000 (0 for 100), got -1"],
    ["IncompleteTraces limit 10001", (c: Client<typeof TraceCollectorService>) => c.incompleteTraces({ limit: 10_001 }, opts), "limit must be an integer in 1..10000 (0 for 1000), got 10001"],
    ["SlowSpanAnalysis limit 10001", (c: Client<typeof TraceCollectorService>) => c.slowSpanAnalysis({ traceId: validTrace, limit: 10_001 }, opts), "limit must be an integer in 1..10000 (0 for 50), got 10001"],
    ["SlowSpanAnalysis threshold -1", (c: Client<typeof TraceCollectorService>) => c.slowSpanAnalysis({ traceId: validTrace, thresholdMs: -1 }, opts), "threshold_ms must be a finite number >= 0, got -1"],
    ["SlowSpanAnalysis threshold NaN", (c: Client<typeof TraceCollectorService>) => c.slowSpanAnalysis({ traceId: validTrace, thresholdMs: Number.NaN }, opts), "threshold_ms must be a finite number >= 0, got NaN"],
    ["ServiceLatencyPercentiles without a service", (c: Client<typeof TraceCollectorService>) => c.serviceLatencyPercentiles({ percentiles: [50] }, opts), "service_name is required"],
    ["ServiceLatencyPercentiles percentile 0", (c: Client<typeof TraceCollectorService>) => c.serviceLatencyPercentiles({ serviceName: "err-svc", percentiles: [50, 0] }, opts), "percentiles[1] must be > 0 and <= 100, got 0"],
    ["ServiceLatencyPercentiles percentile 100.5", (c: Client<typeof TraceCollectorService>) => c.serviceLatencyPercentiles({ serviceName: "nobody", percentiles: [100.5] }, opts), "percentiles[0] must be > 0 and <= 100, got 100.5"],
    ["ServiceLatencyPercentiles since nanos", (c: Client<typeof TraceCollectorService>) => c.serviceLatencyPercentiles({ serviceName: "err-svc", since: { seconds: 1n, nanos: -1 } }, opts), "since.nanos must be 0..999999999, got -1"],
    ["SloComplianceReport SLO 0", (c: Client<typeof TraceCollectorService>) => c.sloComplianceReport({ sloByService: { "err-svc": 0 } }, opts), 'slo_by_service["err-svc"] must be > 0 ms, got 0'],
    ["SloComplianceReport SLO -5", (c: Client<typeof TraceCollectorService>) => c.sloComplianceReport({ sloByService: { ok: 1, neg: -5 } }, opts), 'slo_by_service["neg"] must be > 0 ms, got -5'],
    ["SloComplianceReport SLO Infinity", (c: Client<typeof TraceCollectorService>) => c.sloComplianceReport({ sloByService: { inf: Number.POSITIVE_INFINITY } }, opts), 'slo_by_service["inf"] must be > 0 ms, got Infinity'],
    ["DependencyGraph since nanos", (c: Client<typeof TraceCollectorService>) => c.dependencyGraph({ since: { seconds: 1n, nanos: 1_000_000_000 } }, opts), "since.nanos must be 0..999999999, got 1000000000"],
  ])("refuses %s with INVALID_ARGUMENT naming the field", async (_what, call, expected) => {
    expect(await invalid(call(tracing))).toBe(expected);
  });

  it("refuses a WatchAnomalies request with a negative min_duration_ms or an out-of-range start_revision on its first read", async () => {
    for (const [request, expected] of [
      [{ minDurationMs: -1n }, "min_duration_ms must be >= 0, got -1"],
      [{ startRevision: -3n }, "start_revision must be 0..9007199254740991, got -3"],
      [{ startRevision: 2n ** 53n }, "start_revision must be 0..9007199254740991, got 9007199254740992"],
    ] as const) {
      const stream = tracing.watchAnomalies(request, { timeoutMs: 5000 })[Symbol.asyncIterator]();
      expect(await invalid(nextWithin(stream))).toBe(expected);
    }
  });

  it.each([
    ["GetTrace", (c: Client<typeof TraceCollectorService>, t: string) => c.getTrace({ traceId: t }, opts)],
    ["LatencyBreakdown", (c: Client<typeof TraceCollectorService>, t: string) => c.latencyBreakdown({ traceId: t }, opts)],
    ["CriticalPath", (c: Client<typeof TraceCollectorService>, t: string) => c.criticalPath({ traceId: t }, opts)],
    ["Flamegraph", (c: Client<typeof TraceCollectorService>, t: string) => c.flamegraph({ traceId: t }, opts)],
    ["SlowSpanAnalysis", (c: Client<typeof TraceCollectorService>, t: string) => c.slowSpanAnalysis({ traceId: t }, opts)],
    ["Children", (c: Client<typeof TraceCollectorService>, t: string) => c.children({ traceId: t, parentSpanId: validSpan }, opts)],
    ["GetSpan", (c: Client<typeof TraceCollectorService>, t: string) => c.getSpan({ traceId: t, spanId: validSpan }, opts)],
  ])("%s answers NOT_FOUND for an unknown trace, naming it", async (_rpc, call) => {
    const unknown = newTraceId();
    const { code, message } = await rpcError(call(tracing, unknown));
    expect(code, message).toBe(Code.NotFound);
    expect(message).toContain(unknown);
  });

  it("GetSpan answers NOT_FOUND for an unknown span of a known trace", async () => {
    const { code, message } = await rpcError(tracing.getSpan({ traceId: complete, spanId: validSpan }, opts));
    expect(code).toBe(Code.NotFound);
    expect(message).toBe(`span ${validSpan} of trace ${complete} not found`);
  });

  it.each([
    ["GetTrace", (c: Client<typeof TraceCollectorService>, t: string) => c.getTrace({ traceId: t }, opts)],
    ["CriticalPath", (c: Client<typeof TraceCollectorService>, t: string) => c.criticalPath({ traceId: t }, opts)],
    ["Flamegraph", (c: Client<typeof TraceCollectorService>, t: string) => c.flamegraph({ traceId: t }, opts)],
    ["SlowSpanAnalysis", (c: Client<typeof TraceCollectorService>, t: string) => c.slowSpanAnalysis({ traceId: t }, opts)],
  ])("%s answers FAILED_PRECONDITION while the trace has no root", async (_rpc, call) => {
    const { code, message } = await rpcError(call(tracing, rootless));
    expect(code, message).toBe(Code.FailedPrecondition);
    expect(message).toBe(`trace ${rootless} has no root span yet: each of its 1 spans has a parent_span_id`);
  });

  it("answers queries of a rootless trace that need no root", async () => {
    const children = await tracing.children({ traceId: rootless, parentSpanId: spanId("root") }, opts);
    expect(children.spans.map((s) => s.spanId)).toEqual([spanId("child")]);
    expect((await tracing.getSpan({ traceId: rootless, spanId: spanId("child") }, opts)).span?.durationMs).toBe(1n);
  });
});
