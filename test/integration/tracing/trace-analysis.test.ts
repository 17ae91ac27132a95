import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpanKind, SpanStatus, TraceCollectorService } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import {
  callOptions as opts,
  newTraceId,
  nsOf,
  spanId,
  spanMessage,
  timestampAt,
  timestampOfNs,
  traceSpans,
  type SpanSpec,
} from "../../fixtures/tracing.js";

/**
 * The reference trace of this file (times in ms):
 *
 *   root  frontend:GET /checkout  [0,100]   SERVER
 *   ├ d   checkout:validate       [2,8]     INTERNAL
 *   ├ a   checkout:reserve        [10,50]   CLIENT
 *   │ ├ a1 inventory:db.query     [15,30]
 *   │ └ a2 inventory:cache.get    [25,45]   ERROR    (overlaps a1)
 *   ├ b   checkout:charge         [40,90]   CLIENT   (overlaps a)
 *   │ └ b1 payment:authorize      [45,85]   TIMEOUT
 *   └ p   frontend:publish        [92,98]   PRODUCER (async)
 *     └ c mailer:send             [105,140] CONSUMER (after the root ended)
 *
 * Self times: root 100 − |[2,8] ∪ [10,90] ∪ [92,98]| = 8, a 40 − |[15,45]| = 10,
 * b 10, p 6 (c lies outside it), leaves their durations.
 */
const checkout: Omit<SpanSpec, "trace">[] = [
  { id: "root", service: "frontend", op: "GET /checkout", kind: SpanKind.SERVER, start: 0, end: 100 },
  { id: "d", parent: "root", service: "checkout", op: "validate", kind: SpanKind.INTERNAL, start: 2, end: 8 },
  { id: "a", parent: "root", service: "checkout", op: "reserve", kind: SpanKind.CLIENT, start: 10, end: 50 },
  { id: "a1", parent: "a", service: "inventory", op: "db.query", start: 15, end: 30 },
  { id: "a2", parent: "a", service: "inventory", op: "cache.get", status: SpanStatus.ERROR, start: 25, end: 45 },
  { id: "b", parent: "root", service: "checkout", op: "charge", kind: SpanKind.CLIENT, start: 40, end: 90 },
  { id: "b1", parent: "b", service: "payment", op: "authorize", status: SpanStatus.TIMEOUT, start: 45, end: 85 },
  { id: "p", parent: "root", service: "frontend", op: "publish", kind: SpanKind.PRODUCER, start: 92, end: 98 },
  { id: "c", parent: "p", service: "mailer", op: "send", kind: SpanKind.CONSUMER, start: 105, end: 140 },
];

const ids = (...labels: string[]): string[] => labels.map(spanId);
const ms = (n: number): bigint => BigInt(n);

describe.each(["grpc", "connect"] as const)("TraceCollectorService over %s", (transport) => {
  let server: TestControlPlane;
  let tracing: Client<typeof TraceCollectorService>;
  beforeAll(async () => {
    server = await startTestControlPlane();
    tracing = transport === "grpc" ? server.grpc(TraceCollectorService) : server.http(TraceCollectorService);
  });
  afterAll(() => server.stop());

  /** Ingests the reference trace (in reverse order) under a fresh id. */
  async function ingestCheckout(): Promise<string> {
    const trace = newTraceId();
    const res = await tracing.ingestBatch({ spans: traceSpans(trace, [...checkout].reverse()) }, opts);
    expect(res).toMatchObject({ ingested: 9, dropped: 0, duplicates: 0, droppedSpans: [] });
    return trace;
  }

  it("ingests a span, and answers the same (trace_id, span_id) again as a duplicate that changes nothing", async () => {
    const trace = newTraceId();
    const first = spanMessage({ trace, id: "root", service: "dup-svc", op: "original", start: 0, end: 5 });
    expect(await tracing.ingest({ span: first }, opts)).toMatchObject({ duplicate: false });
    const again = spanMessage({ trace, id: "root", service: "dup-svc", op: "changed", start: 0, end: 50 });
    expect(await tracing.ingest({ span: again }, opts)).toMatchObject({ duplicate: true });
    const { span } = await tracing.getSpan({ traceId: trace, spanId: spanId("root") }, opts);
    expect(span?.operationName).toBe("original");
    expect(span?.durationMs).toBe(5n);
  });

  it("ingests a batch in one call and counts a repeated batch as duplicates", async () => {
    const trace = await ingestCheckout();
    const again = await tracing.ingestBatch({ spans: traceSpans(trace, checkout) }, opts);
    expect(again).toMatchObject({ ingested: 0, dropped: 0, duplicates: 9, droppedSpans: [] });
    const empty = await tracing.ingestBatch({ spans: [] }, opts);
    expect(empty).toMatchObject({ ingested: 0, dropped: 0, duplicates: 0 });
  });

  it("assembles a trace: root, spans by start time, total duration over all spans, services and errors", async () => {
    const trace = await ingestCheckout();
    const before = Date.now();
    const res = await tracing.getTrace({ traceId: trace }, opts);
    const after = Date.now();
    const tree = res.trace!;
    expect(tree.traceId).toBe(trace);
    expect(tree.rootSpan?.spanId).toBe(spanId("root"));
    expect(tree.rootSpan?.parentSpanId).toBe("");
    expect(tree.spans.map((s) => s.spanId)).toEqual(ids("root", "d", "a", "a1", "a2", "b", "b1", "p", "c"));
    expect(tree.spans.map((s) => s.durationMs)).toEqual([100n, 6n, 40n, 15n, 20n, 50n, 40n, 6n, 35n]);
    // max(end) − min(start): the consumer ends at 140, after the root.
    expect(tree.totalDurationMs).toBe(140n);
    expect(tree.serviceCount).toBe(5);
    expect(tree.errorCount).toBe(2);
    expect(tree.orphanSpanIds).toEqual([]);
    const assembledMs = Number(nsOf(tree.assembledAt) / 1_000_000n);
    expect(assembledMs).toBeGreaterThanOrEqual(before);
    expect(assembledMs).toBeLessThanOrEqual(after);
  });

  /** A root with tags and logs and a child with tags, ingested; returns the trace id. */
  async function ingestTagged(): Promise<string> {
    const trace = newTraceId();
    const root = spanMessage(
      { trace, id: "root", service: "tagged", op: "GET /", start: 0, end: 30 },
      {
        tags: { "http.method": "GET", "ключ": "✓", empty: "" },
        logs: [
          { time: { seconds: 1_700_000_123n, nanos: 5 }, fields: { event: "retry", attempt: "2" } },
          { time: { seconds: 1_700_000_124n, nanos: 0 }, fields: {} },
        ],
      },
    );
    const child = spanMessage({ trace, id: "child", parent: "root", service: "db", op: "query", start: 5, end: 9 }, { tags: { table: "orders" } });
    await tracing.ingestBatch({ spans: [child, root] }, opts);
    return trace;
  }

  it("answers GetTrace with every span exactly as GetSpan answers it, tags and logs included", async () => {
    const trace = await ingestTagged();
    const tree = (await tracing.getTrace({ traceId: trace }, opts)).trace!;
    expect(tree.spans.map((s) => s.spanId)).toEqual(ids("root", "child"));
    for (const span of tree.spans) {
      expect(span).toEqual((await tracing.getSpan({ traceId: trace, spanId: span.spanId }, opts)).span);
    }
    expect(tree.rootSpan).toEqual(tree.spans[0]);
    expect(tree.spans[0]?.tags).toEqual({ "http.method": "GET", "ключ": "✓", empty: "" });
    expect(tree.spans[0]?.logs).toHaveLength(2);
    expect(tree.spans[1]?.tags).toEqual({ table: "orders" });
  });

  it("answers GetTrace as Connect JSON, as curl would ask for it, with the same spans", async () => {
    const trace = await ingestTagged();
    const res = await fetch(`${server.httpBaseUrl}/latticeforge.tracing.v1.TraceCollectorService/GetTrace`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ traceId: trace }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { trace: { rootSpan: { spanId: string }; spans: { spanId: string; tags?: unknown; logs?: unknown[] }[] } };
    expect(body.trace.rootSpan.spanId).toBe(spanId("root"));
    expect(body.trace.spans.map((s) => s.spanId)).toEqual(ids("root", "child"));
    expect(body.trace.spans[0]?.tags).toEqual({ "http.method": "GET", "ключ": "✓", empty: "" });
    expect(body.trace.spans[0]?.logs).toEqual([
      { time: "2023-11-14T22:15:23.000000005Z", fields: { event: "retry", attempt: "2" } },
      { time: "2023-11-14T22:15:24Z" },
    ]);
  });

  /** Spans in GetTrace's answer for `trace`; 0 while it is unknown (NOT_FOUND). */
  async function spansNow(trace: string): Promise<number> {
    try {
      return (await tracing.getTrace({ traceId: trace }, opts)).trace?.spans.length ?? -1;
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.NotFound) return 0;
      throw error;
    }
  }

  it("never shows a large IngestBatch half-written (it is written in steps), and answers other traces meanwhile", async () => {
    /** A trace of `count` spans: a root and its children. */
    const traceOf = (trace: string, count: number) =>
      Array.from({ length: count }, (_, i) =>
        spanMessage({ trace, id: `s${i}`, ...(i > 0 ? { parent: "s0" } : {}), start: i, end: count + 1, tags: { n: String(i) } }),
      );
    const settledTrace = newTraceId();
    await tracing.ingestBatch({ spans: traceOf(settledTrace, 3) }, opts);
    // 4 traces of 500 spans: 2,000 spans, 8 steps or more.
    const batchTraces = [newTraceId(), newTraceId(), newTraceId(), newTraceId()];
    let done = false;
    const ingest = tracing.ingestBatch({ spans: batchTraces.flatMap((trace) => traceOf(trace, 500)) }, opts).finally(() => {
      done = true;
    });
    const seen: number[] = [];
    while (!done) {
      const [settledSpans, ...batchSpans] = await Promise.all([spansNow(settledTrace), ...batchTraces.map(spansNow)]);
      expect(settledSpans).toBe(3);
      seen.push(...batchSpans);
    }
    expect(await ingest).toMatchObject({ ingested: 2000, dropped: 0, duplicates: 0 });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((count) => count !== 0 && count !== 500)).toEqual([]);
    for (const trace of batchTraces) expect(await spansNow(trace)).toBe(500);
  });

  it("lists orphans, picks the earliest parentless span as root and orders equal starts by span_id", async () => {
    const trace = newTraceId();
    await tracing.ingestBatch(
      {
        spans: traceSpans(trace, [
          { id: "late-root", start: 5, end: 20 },
          { id: "root", start: 0, end: 30 },
          { id: "x", parent: "root", start: 10, end: 12 },
          { id: "y", parent: "root", start: 10, end: 11 },
          { id: "lost", parent: "never-arrived", start: 1, end: 2 },
        ]),
      },
      opts,
    );
    const tree = (await tracing.getTrace({ traceId: trace }, opts)).trace!;
    expect(tree.rootSpan?.spanId).toBe(spanId("root"));
    const sameStart = ids("x", "y").sort();
    expect(tree.spans.map((s) => s.spanId)).toEqual([...ids("root", "lost", "late-root"), ...sameStart]);
    expect(tree.orphanSpanIds).toEqual(ids("lost"));
    expect(tree.totalDurationMs).toBe(30n);
  });

  it("returns a span exactly as ingested, with nanosecond times, tags and logs", async () => {
    const trace = newTraceId();
    const start = { seconds: 1_700_000_123n, nanos: 123_456_789 };
    const end = { seconds: 1_700_000_124n, nanos: 1 };
    const sent = spanMessage(
      { trace, id: "precise", parent: "someone", service: "ns-svc", op: "op", kind: SpanKind.CLIENT, start: 0, end: 0 },
      {
        status: SpanStatus.CANCELLED,
        startTime: start,
        endTime: end,
        tags: { "http.method": "GET", "peer.service": "db" },
        logs: [{ time: { seconds: 1_700_000_123n, nanos: 999_999_999 }, fields: { event: "retry", attempt: "2" } }],
      },
    );
    // duration_ms is output only: what a client sends is ignored.
    sent.durationMs = 999n;
    await tracing.ingest({ span: sent }, opts);
    const { span } = await tracing.getSpan({ traceId: trace, spanId: spanId("precise") }, opts);
    expect(span).toMatchObject({
      spanId: spanId("precise"),
      traceId: trace,
      parentSpanId: spanId("someone"),
      serviceName: "ns-svc",
      operationName: "op",
      kind: SpanKind.CLIENT,
      status: SpanStatus.CANCELLED,
      startTime: start,
      endTime: end,
      tags: { "http.method": "GET", "peer.service": "db" },
      logs: [{ time: { seconds: 1_700_000_123n, nanos: 999_999_999 }, fields: { event: "retry", attempt: "2" } }],
      // 1 s + 1 ns − 123,456,789 ns = 876,543,212 ns, rounded down.
      durationMs: 876n,
    });
  });

  it("reads an unspecified kind as INTERNAL", async () => {
    const trace = newTraceId();
    await tracing.ingest({ span: spanMessage({ trace, id: "root", kind: SpanKind.UNSPECIFIED, start: 0, end: 1 }) }, opts);
    expect((await tracing.getSpan({ traceId: trace, spanId: spanId("root") }, opts)).span?.kind).toBe(SpanKind.INTERNAL);
  });

  it("keeps nanoseconds through the critical path: a root of 876.543212 ms is exactly that", async () => {
    const trace = newTraceId();
    const startNs = 1_700_000_123_123_456_789n;
    const root = spanMessage(
      { trace, id: "root", service: "ns-svc", start: 0, end: 0 },
      { startTime: timestampOfNs(startNs), endTime: timestampOfNs(startNs + 876_543_212n) },
    );
    await tracing.ingest({ span: root }, opts);
    const path = await tracing.criticalPath({ traceId: trace }, opts);
    expect(path.totalMs).toBe(876n);
    expect(path.spans).toHaveLength(1);
    expect(path.spans[0]!.criticalTimeMs).toBe(876n);
    expect(path.spans[0]!.criticalTime).toEqual(create(DurationSchema, { seconds: 0n, nanos: 876_543_212 }));
    const tree = (await tracing.getTrace({ traceId: trace }, opts)).trace!;
    expect(nsOf(tree.rootSpan!.startTime)).toBe(startNs);
    expect(nsOf(tree.rootSpan!.endTime)).toBe(startNs + 876_543_212n);
  });

  it("lists a span's children sorted by start time; a leaf or unknown parent has none", async () => {
    const trace = await ingestCheckout();
    const rootChildren = await tracing.children({ traceId: trace, parentSpanId: spanId("root") }, opts);
    expect(rootChildren.spans.map((s) => s.spanId)).toEqual(ids("d", "a", "b", "p"));
    expect(rootChildren.spans[1]).toMatchObject({ serviceName: "checkout", operationName: "reserve", kind: SpanKind.CLIENT });
    const aChildren = await tracing.children({ traceId: trace, parentSpanId: spanId("a") }, opts);
    expect(aChildren.spans.map((s) => s.spanId)).toEqual(ids("a1", "a2"));
    expect((await tracing.children({ traceId: trace, parentSpanId: spanId("b1") }, opts)).spans).toEqual([]);
    expect((await tracing.children({ traceId: trace, parentSpanId: spanId("nobody") }, opts)).spans).toEqual([]);
  });

  it("breaks latency down per service, subtracting overlapping children once, by total descending", async () => {
    const trace = await ingestCheckout();
    const res = await tracing.latencyBreakdown({ traceId: trace }, opts);
    expect(
      res.breakdowns.map((b) => ({
        service: b.serviceName,
        total: b.totalMs,
        self: b.selfMs,
        count: b.spanCount,
        errorRate: b.errorRate,
      })),
    ).toEqual([
      { service: "frontend", total: ms(106), self: ms(14), count: 2, errorRate: 0 },
      { service: "checkout", total: ms(96), self: ms(26), count: 3, errorRate: 0 },
      { service: "payment", total: ms(40), self: ms(40), count: 1, errorRate: 1 },
      // Equal totals: by service name.
      { service: "inventory", total: ms(35), self: ms(35), count: 2, errorRate: 0.5 },
      { service: "mailer", total: ms(35), self: ms(35), count: 1, errorRate: 0 },
    ]);
  });

  it("walks the critical path as Jaeger does: async producer/consumer children and overlapped siblings are off it", async () => {
    const trace = await ingestCheckout();
    const res = await tracing.criticalPath({ traceId: trace }, opts);
    // Sections: root [0,2], d [2,8], root [8,40], b [40,45], b1 [45,85], b [85,90], root [90,100].
    // `a` ends at 50, after the cursor (40) reached at b's start, so it is skipped.
    expect(res.spans.map((s) => [s.span!.spanId, s.criticalTimeMs])).toEqual([
      [spanId("root"), 44n],
      [spanId("d"), 6n],
      [spanId("b"), 10n],
      [spanId("b1"), 40n],
    ]);
    expect(res.spans.map((s) => s.criticalTime)).toEqual([44, 6, 10, 40].map((n) => create(DurationSchema, { nanos: n * 1_000_000 })));
    expect(res.totalMs).toBe(100n);
    expect(res.spans[0]!.span?.operationName).toBe("GET /checkout");
  });

  it("clips children to their parent on the critical path and drops those outside it", async () => {
    const trace = newTraceId();
    await tracing.ingestBatch(
      {
        spans: traceSpans(trace, [
          { id: "root", start: 0, end: 10.5 },
          // Runs past the root: only [0.25, 10.5] counts.
          { id: "x", parent: "root", start: 0.25, end: 12 },
          // Starts after x's clipped end: off the path.
          { id: "y", parent: "x", start: 11, end: 11.5 },
          // Entirely before the root.
          { id: "w", parent: "root", start: -5, end: -1 },
        ]),
      },
      opts,
    );
    const res = await tracing.criticalPath({ traceId: trace }, opts);
    expect(res.spans.map((s) => [s.span!.spanId, s.criticalTimeMs, s.criticalTime?.nanos])).toEqual([
      [spanId("root"), 0n, 250_000],
      [spanId("x"), 10n, 10_250_000],
    ]);
    expect(res.totalMs).toBe(10n);
  });

  it("renders the root's subtree as a flame graph tree and as sorted folded stacks of self time", async () => {
    const trace = await ingestCheckout();
    const res = await tracing.flamegraph({ traceId: trace }, opts);
    const shape = (node: NonNullable<typeof res.root>): unknown => ({
      name: node.name,
      value: node.value,
      self: node.selfValue,
      id: node.spanId,
      children: node.children.map(shape),
    });
    const frame = (id: string, name: string, value: number, self: number, children: unknown[] = []) => ({
      name,
      value: BigInt(value * 1_000_000),
      self: BigInt(self * 1_000_000),
      id: spanId(id),
      children,
    });
    expect(shape(res.root!)).toEqual(
      frame("root", "frontend:GET /checkout", 100, 8, [
        frame("d", "checkout:validate", 6, 6),
        frame("a", "checkout:reserve", 40, 10, [
          frame("a1", "inventory:db.query", 15, 15),
          frame("a2", "inventory:cache.get", 20, 20),
        ]),
        frame("b", "checkout:charge", 50, 10, [frame("b1", "payment:authorize", 40, 40)]),
        frame("p", "frontend:publish", 6, 6, [frame("c", "mailer:send", 35, 35)]),
      ]),
    );
    expect(res.folded).toBe(
      [
        "frontend:GET /checkout 8000000",
        "frontend:GET /checkout;checkout:charge 10000000",
        "frontend:GET /checkout;checkout:charge;payment:authorize 40000000",
        "frontend:GET /checkout;checkout:reserve 10000000",
        "frontend:GET /checkout;checkout:reserve;inventory:cache.get 20000000",
        "frontend:GET /checkout;checkout:reserve;inventory:db.query 15000000",
        "frontend:GET /checkout;checkout:validate 6000000",
        "frontend:GET /checkout;frontend:publish 6000000",
        "frontend:GET /checkout;frontend:publish;mailer:send 35000000",
        "",
      ].join("\n"),
    );
  });

  it("keeps folded stacks parseable: a ';' or line break in a frame name becomes '_'", async () => {
    const trace = newTraceId();
    await tracing.ingestBatch(
      {
        spans: traceSpans(trace, [
          { id: "root", service: "web", op: "GET /a;b", start: 0, end: 3 },
          { id: "child", parent: "root", service: "db", op: "SELECT 1;\nSELECT 2", start: 1, end: 2 },
        ]),
      },
      opts,
    );
    const res = await tracing.flamegraph({ traceId: trace }, opts);
    expect(res.root?.name).toBe("web:GET /a;b");
    expect(res.root?.children[0]?.name).toBe("db:SELECT 1;\nSELECT 2");
    expect(res.folded).toBe("web:GET /a_b 2000000\nweb:GET /a_b;db:SELECT 1__SELECT 2 1000000\n");
  });

  it("lists slow spans longest first with trace share, self time and whether they are on the critical path", async () => {
    const trace = await ingestCheckout();
    const res = await tracing.slowSpanAnalysis({ traceId: trace, thresholdMs: 30 }, opts);
    expect(res.spans.map((s) => [s.span!.spanId, s.durationMs, s.traceShare, s.selfMs, s.onCriticalPath])).toEqual([
      [spanId("root"), 100n, 100 / 140, 8n, true],
      [spanId("b"), 50n, 50 / 140, 10n, true],
      // Equal durations: by start time.
      [spanId("a"), 40n, 40 / 140, 10n, false],
      [spanId("b1"), 40n, 40 / 140, 40n, true],
      [spanId("c"), 35n, 35 / 140, 35n, false],
    ]);
    const limited = await tracing.slowSpanAnalysis({ traceId: trace, thresholdMs: 30, limit: 2 }, opts);
    expect(limited.spans.map((s) => s.span!.spanId)).toEqual(ids("root", "b"));
    // "Longer than": a 40 ms span is not over a 40 ms threshold.
    const strict = await tracing.slowSpanAnalysis({ traceId: trace, thresholdMs: 40 }, opts);
    expect(strict.spans.map((s) => s.span!.spanId)).toEqual(ids("root", "b"));
    const all = await tracing.slowSpanAnalysis({ traceId: trace, thresholdMs: 0 }, opts);
    expect(all.spans).toHaveLength(9);
  });

  it("ranks a service's span durations nearest-rank, with the default and requested percentiles", async () => {
    const service = `pct-${transport}`;
    // 100 single-span traces lasting 1..100 ms, sent in scrambled order.
    const durations = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    await tracing.ingestBatch(
      { spans: durations.map((d, i) => spanMessage({ trace: newTraceId(), id: `p${i}`, service, start: i, end: i + d })) },
      opts,
    );
    const byDefault = await tracing.serviceLatencyPercentiles({ serviceName: service }, opts);
    expect(byDefault.sampleCount).toBe(100);
    expect(byDefault.percentiles.map((p) => [p.percentile, p.latencyMs])).toEqual([
      [50, 50n],
      [90, 90n],
      [95, 95n],
      [99, 99n],
    ]);
    const requested = await tracing.serviceLatencyPercentiles({ serviceName: service, percentiles: [99.9, 1, 100, 0.5, 33.3] }, opts);
    expect(requested.percentiles.map((p) => [p.percentile, p.latencyMs])).toEqual([
      [99.9, 100n],
      [1, 1n],
      [100, 100n],
      [0.5, 1n],
      [33.3, 34n],
    ]);
  });

  it("ranks only spans started since a time, floors fractional durations, and answers no samples with nothing", async () => {
    const service = `pct-since-${transport}`;
    const trace = newTraceId();
    await tracing.ingestBatch(
      {
        spans: traceSpans(trace, [
          { id: "old", service, start: 0, end: 500 },
          { id: "s1", service, start: 1000, end: 1001.5 },
          { id: "s2", service, start: 1100, end: 1102.999999 },
          { id: "s3", service, start: 1200, end: 1207.25 },
        ]),
      },
      opts,
    );
    const since = await tracing.serviceLatencyPercentiles({ serviceName: service, percentiles: [50, 100], since: timestampAt(1000) }, opts);
    expect(since.sampleCount).toBe(3);
    expect(since.percentiles.map((p) => [p.percentile, p.latencyMs])).toEqual([
      [50, 2n],
      [100, 7n],
    ]);
    const all = await tracing.serviceLatencyPercentiles({ serviceName: service, percentiles: [100] }, opts);
    expect(all.sampleCount).toBe(4);
    expect(all.percentiles[0]!.latencyMs).toBe(500n);
    const none = await tracing.serviceLatencyPercentiles({ serviceName: `nobody-${transport}` }, opts);
    expect(none.sampleCount).toBe(0);
    expect(none.percentiles).toEqual([]);
  });

  it("applies `since` to the nanosecond: a span that started before it is left out, one starting at it counts", async () => {
    const caller = `since-ns-caller-${transport}`;
    const callee = `since-ns-callee-${transport}`;
    const trace = newTraceId();
    await tracing.ingestBatch(
      {
        spans: traceSpans(trace, [
          { id: "root", service: caller, start: 0, end: 10 },
          // Both start within the millisecond [1000, 1001).
          { id: "before", parent: "root", service: callee, start: 1000.0004, end: 1003 },
          { id: "at", parent: "root", service: callee, start: 1000.0005, end: 1009 },
        ]),
      },
      opts,
    );
    const since = timestampAt(1000.0005);
    const pct = await tracing.serviceLatencyPercentiles({ serviceName: callee, percentiles: [100], since }, opts);
    expect(pct.sampleCount).toBe(1);
    expect(pct.percentiles[0]!.latencyMs).toBe(8n);
    const slo = await tracing.sloComplianceReport({ sloByService: { [callee]: 5 }, since }, opts);
    expect(slo.services.map((s) => [s.sampleCount, s.violations, s.p99Ms])).toEqual([[1, 1, 8n]]);
    const graph = await tracing.dependencyGraph({ since }, opts);
    const edges = graph.services.find((n) => n.serviceName === caller)?.downstream.map((d) => [d.serviceName, d.callCount]);
    expect(edges).toEqual([[callee, 1n]]);
  });

  it("reports SLO compliance against the requested SLOs, by service name", async () => {
    const trace = newTraceId();
    const a = `slo-a-${transport}`;
    const b = `slo-b-${transport}`;
    const none = `slo-none-${transport}`;
    await tracing.ingestBatch(
      {
        spans: traceSpans(trace, [
          { id: "a0", service: a, start: 0, end: 5 },
          // Equal to the SLO: complies.
          { id: "a1", service: a, start: 0, end: 10 },
          { id: "a2", service: a, start: 0, end: 15 },
          { id: "a3", service: a, start: 0, end: 20 },
          { id: "b0", service: b, start: 0, end: 5.5 },
          // 5.6 ms is over 5.5 ms, though its duration_ms is 5.
          { id: "b1", service: b, start: 0, end: 5.6 },
        ]),
      },
      opts,
    );
    const res = await tracing.sloComplianceReport({ sloByService: { [none]: 3, [b]: 5.5, [a]: 10 } }, opts);
    expect(res.services.map((s) => [s.serviceName, s.sloMs, s.p99Ms, s.compliancePct, s.violations, s.sampleCount])).toEqual([
      [a, 10, 20n, 50, 2, 4],
      [b, 5.5, 5n, 50, 1, 2],
      // Without samples: no p99, fully compliant.
      [none, 3, undefined, 100, 0, 0],
    ]);
    expect(res.services[2]!.p99Ms).toBeUndefined();
  });

  it("reports SLO compliance against the server's default SLOs (discovery 15, mirror 5, tracing 25 ms), since a time", async () => {
    const trace = newTraceId();
    await tracing.ingestBatch(
      {
        spans: traceSpans(trace, [
          { id: "old", service: "discovery", start: -100_000, end: -99_000 },
          { id: "d1", service: "discovery", start: 0, end: 10 },
          { id: "d2", service: "discovery", start: 0, end: 20 },
          { id: "d3", service: "discovery", start: 0, end: 14 },
          { id: "t1", service: "tracing", start: 0, end: 25 },
        ]),
      },
      opts,
    );
    const res = await tracing.sloComplianceReport({ since: timestampAt(-1) }, opts);
    expect(res.services.map((s) => [s.serviceName, s.sloMs, s.p99Ms, s.compliancePct, s.violations, s.sampleCount])).toEqual([
      ["discovery", 15, 20n, (100 * 2) / 3, 1, 3],
      ["mirror", 5, undefined, 100, 0, 0],
      ["tracing", 25, 25n, 100, 0, 1],
    ]);
  });

  it("builds the dependency graph from parent-to-child calls across services, optionally since a time", async () => {
    const svc = (name: string): string => `dep-${transport}-${name}`;
    const early = newTraceId();
    const late = newTraceId();
    await tracing.ingestBatch(
      {
        spans: [
          ...traceSpans(early, [
            { id: "r", service: svc("gateway"), start: 0, end: 50 },
            { id: "u1", parent: "r", service: svc("users"), start: 1, end: 5 },
            { id: "u2", parent: "r", service: svc("users"), start: 6, end: 9 },
            // Within one service: not a dependency.
            { id: "g2", parent: "r", service: svc("gateway"), start: 10, end: 20 },
            { id: "o1", parent: "g2", service: svc("orders"), start: 11, end: 19 },
            { id: "db1", parent: "o1", service: svc("db"), start: 12, end: 13 },
            // Its parent is not stored: counts nothing.
            { id: "lost", parent: "missing", service: svc("db"), start: 14, end: 15 },
          ]),
          ...traceSpans(late, [
            { id: "r", service: svc("gateway"), start: 10_000, end: 10_050 },
            { id: "o1", parent: "r", service: svc("orders"), start: 10_001, end: 10_020 },
            { id: "db1", parent: "o1", service: svc("db"), start: 10_002, end: 10_003 },
            { id: "db2", parent: "o1", service: svc("db"), start: 10_004, end: 10_005 },
          ]),
        ],
      },
      opts,
    );
    const graph = (nodes: { serviceName: string; downstream: { serviceName: string; callCount: bigint }[] }[]) =>
      nodes
        .filter((n) => n.serviceName.startsWith(`dep-${transport}-`))
        .map((n) => [n.serviceName, n.downstream.map((d) => [d.serviceName, d.callCount])]);
    const all = await tracing.dependencyGraph({}, opts);
    expect(graph(all.services)).toEqual([
      [svc("db"), []],
      [svc("gateway"), [[svc("orders"), 2n], [svc("users"), 2n]]],
      [svc("orders"), [[svc("db"), 3n]]],
      [svc("users"), []],
    ]);
    const recent = await tracing.dependencyGraph({ since: timestampAt(10_000) }, opts);
    expect(graph(recent.services)).toEqual([
      [svc("db"), []],
      [svc("gateway"), [[svc("orders"), 1n]]],
      [svc("orders"), [[svc("db"), 2n]]],
    ]);
  });

  it("lists traces without a root oldest first, until their root arrives; their breakdown needs no root", async () => {
    const first = newTraceId();
    const second = newTraceId();
    await tracing.ingest({ span: spanMessage({ trace: first, id: "child", parent: "root", service: "inc", start: 1, end: 4 }) }, opts);
    await tracing.ingest({ span: spanMessage({ trace: second, id: "child", parent: "root", service: "inc", start: 1, end: 2 }) }, opts);
    const listed = (await tracing.incompleteTraces({}, opts)).traceIds;
    expect(listed.filter((id) => id === first || id === second)).toEqual([first, second]);
    const one = await tracing.incompleteTraces({ limit: 1 }, opts);
    expect(one.traceIds).toEqual(listed.slice(0, 1));

    const breakdown = await tracing.latencyBreakdown({ traceId: first }, opts);
    expect(breakdown.breakdowns.map((b) => [b.serviceName, b.totalMs, b.selfMs, b.spanCount])).toEqual([["inc", 3n, 3n, 1]]);

    await tracing.ingest({ span: spanMessage({ trace: first, id: "root", service: "inc", start: 0, end: 5 }) }, opts);
    const after = (await tracing.incompleteTraces({ limit: 10_000 }, opts)).traceIds;
    expect(after).not.toContain(first);
    expect(after).toContain(second);
    expect((await tracing.getTrace({ traceId: first }, opts)).trace?.rootSpan?.spanId).toBe(spanId("root"));
  });
});
