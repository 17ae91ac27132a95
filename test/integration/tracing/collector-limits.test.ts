import { Code, type Client } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { DropReason, SpanStatus, TraceCollectorService } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { callOptions as opts, newTraceId, nsOf, rpcError, spanId, spanMessage, traceSpans } from "../../fixtures/tracing.js";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("TraceCollectorService limits, expiry and server-configured thresholds", () => {
  const servers: TestControlPlane[] = [];
  const start = async (flags: Record<string, string>): Promise<Client<typeof TraceCollectorService>> => {
    const server = await startTestControlPlane({ flags });
    servers.push(server);
    return server.grpc(TraceCollectorService);
  };
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
  });

  it("refuses a span of a full trace with RESOURCE_EXHAUSTED, but still answers its duplicates OK", async () => {
    const tracing = await start({ "max-spans-per-trace": "3" });
    const trace = newTraceId();
    const spans = traceSpans(trace, [
      { id: "root", start: 0, end: 10 },
      { id: "a", parent: "root", start: 1, end: 2 },
      { id: "b", parent: "root", start: 3, end: 4 },
      { id: "c", parent: "root", start: 5, end: 6 },
    ]);
    for (const span of spans.slice(0, 3)) expect((await tracing.ingest({ span }, opts)).duplicate).toBe(false);
    const { code, message } = await rpcError(tracing.ingest({ span: spans[3]! }, opts));
    expect(code).toBe(Code.ResourceExhausted);
    expect(message).toBe(`trace ${trace} is full: it holds the maximum of 3 spans`);
    expect((await tracing.ingest({ span: spans[1]! }, opts)).duplicate).toBe(true);
    const tree = (await tracing.getTrace({ traceId: trace }, opts)).trace!;
    expect(tree.spans.map((s) => s.spanId)).toEqual(["root", "a", "b"].map(spanId));
  });

  it("lets exactly max-spans-per-trace of many concurrent ingests into one trace through", async () => {
    const tracing = await start({ "max-spans-per-trace": "3" });
    const trace = newTraceId();
    const spans = Array.from({ length: 12 }, (_, i) => spanMessage({ trace, id: `c${i}`, parent: "root", start: i, end: i + 1 }));
    const outcomes = await Promise.all(
      spans.map((span) =>
        tracing.ingest({ span }, opts).then(
          () => "ingested",
          (e: { code: Code }) => e.code,
        ),
      ),
    );
    expect(outcomes.filter((o) => o === "ingested")).toHaveLength(3);
    expect(outcomes.filter((o) => o === Code.ResourceExhausted)).toHaveLength(9);
    const children = await tracing.children({ traceId: trace, parentSpanId: spanId("root") }, opts);
    expect(children.spans).toHaveLength(3);
  });

  it("counts a batch as {ingested, dropped, duplicates} and details each dropped span in request order", async () => {
    const tracing = await start({ "max-spans-per-trace": "3" });
    const full = newTraceId();
    const other = newTraceId();
    const stored = spanMessage({ trace: other, id: "root", start: 0, end: 1 });
    await tracing.ingest({ span: stored }, opts);
    const batch = [
      ...traceSpans(full, [
        { id: "s1", start: 0, end: 1 },
        { id: "s2", start: 0, end: 1 },
      ]),
      // A repeat within the batch.
      spanMessage({ trace: full, id: "s1", start: 0, end: 1 }),
      // A repeat of a stored span.
      stored,
      spanMessage({ trace: full, id: "s3", start: 0, end: 1 }),
      spanMessage({ trace: full, id: "s4", start: 0, end: 1 }),
      spanMessage({ trace: other, id: "child", parent: "root", start: 0, end: 1 }),
      spanMessage({ trace: full, id: "s5", start: 0, end: 1 }),
    ];
    const res = await tracing.ingestBatch({ spans: batch }, opts);
    expect(res.ingested).toBe(4);
    expect(res.duplicates).toBe(2);
    expect(res.dropped).toBe(2);
    expect(res.droppedSpans.map((d) => [d.index, d.traceId, d.spanId, d.reason, d.message])).toEqual([
      [5, full, spanId("s4"), DropReason.TRACE_FULL, `trace ${full} is full: it holds the maximum of 3 spans`],
      [7, full, spanId("s5"), DropReason.TRACE_FULL, `trace ${full} is full: it holds the maximum of 3 spans`],
    ]);
    expect((await tracing.getTrace({ traceId: full }, opts)).trace!.spans).toHaveLength(3);
    expect((await tracing.getTrace({ traceId: other }, opts)).trace!.spans).toHaveLength(2);
  });

  it("drops spans of expired traces (FAILED_PRECONDITION for Ingest) and prunes them with PruneExpired", async () => {
    const tracing = await start({ "trace-ttl": "1", "prune-interval": "3600" });
    const old = newTraceId();
    const oldToo = newTraceId();
    await tracing.ingestBatch(
      {
        spans: [
          ...traceSpans(old, [{ id: "root", start: 0, end: 10 }]),
          ...traceSpans(oldToo, [{ id: "root", start: 0, end: 10 }]),
        ],
      },
      opts,
    );
    expect((await tracing.pruneExpired({}, opts)).pruned).toBe(0);
    await sleep(1100);

    const late = spanMessage({ trace: old, id: "late", parent: "root", start: 1, end: 2 });
    const { code, message } = await rpcError(tracing.ingest({ span: late }, opts));
    expect(code).toBe(Code.FailedPrecondition);
    expect(message).toMatch(new RegExp(`^trace ${old} has expired: first seen \\d+ ms ago, over the 1000 ms TTL$`));

    const fresh = newTraceId();
    const res = await tracing.ingestBatch(
      {
        spans: [
          spanMessage({ trace: fresh, id: "root", start: 0, end: 1 }),
          late,
          // A retried export of a stored span is a duplicate even once expired.
          spanMessage({ trace: oldToo, id: "root", start: 0, end: 10 }),
        ],
      },
      opts,
    );
    expect(res).toMatchObject({ ingested: 1, dropped: 1, duplicates: 1 });
    expect(res.droppedSpans.map((d) => [d.index, d.traceId, d.spanId, d.reason])).toEqual([
      [1, old, spanId("late"), DropReason.TRACE_EXPIRED],
    ]);
    expect(res.droppedSpans[0]!.message).toContain("has expired");

    expect((await tracing.pruneExpired({}, opts)).pruned).toBe(2);
    for (const trace of [old, oldToo]) expect((await rpcError(tracing.getTrace({ traceId: trace }, opts))).code).toBe(Code.NotFound);
    expect((await tracing.getTrace({ traceId: fresh }, opts)).trace?.spans).toHaveLength(1);
    expect((await tracing.pruneExpired({}, opts)).pruned).toBe(0);
    // Once pruned, the id starts a new trace.
    expect((await tracing.ingest({ span: late }, opts)).duplicate).toBe(false);
  });

  it("prunes expired traces in the background", async () => {
    const tracing = await start({ "trace-ttl": "1", "prune-interval": "0.05" });
    const trace = newTraceId();
    await tracing.ingest({ span: spanMessage({ trace, id: "root", start: 0, end: 1 }) }, opts);
    const deadline = Date.now() + 4000;
    let code: Code | undefined;
    while (code !== Code.NotFound && Date.now() < deadline) {
      code = await tracing.getTrace({ traceId: trace }, opts).then(
        () => undefined,
        (e: { code: Code }) => e.code,
      );
      if (code !== Code.NotFound) await sleep(50);
    }
    expect(code).toBe(Code.NotFound);
  });

  it("lists anomalous traces over the configured threshold, slowest first then by trace_id, up to the limit", async () => {
    const tracing = await start({ "anomaly-threshold": "500" });
    const ids = Array.from({ length: 7 }, () => newTraceId());
    const [t3000, t2000a, t2000b, t1500, rootless, exactly, under] = ids as [string, string, string, string, string, string, string];
    const [tieFirst, tieSecond] = [t2000a, t2000b].sort();
    const before = Date.now();
    await tracing.ingestBatch(
      {
        spans: [
          ...traceSpans(t1500, [
            { id: "root", service: "edge", op: "GET /a", start: 0, end: 600 },
            { id: "late", parent: "root", status: SpanStatus.ERROR, start: 100, end: 1500 },
          ]),
          ...traceSpans(t3000, [{ id: "root", service: "edge", op: "GET /b", start: 0, end: 3000 }]),
          ...traceSpans(t2000a, [{ id: "root", service: "edge", op: "GET /c", start: 0, end: 2000 }]),
          ...traceSpans(t2000b, [{ id: "root", service: "edge", op: "GET /d", start: 10, end: 2010 }]),
          ...traceSpans(rootless, [{ id: "orphan", parent: "gone", service: "edge", start: 0, end: 700.5 }]),
          // Exactly at the threshold is not over it.
          ...traceSpans(exactly, [{ id: "root", service: "edge", start: 0, end: 500 }]),
          ...traceSpans(under, [{ id: "root", service: "edge", start: 0, end: 20 }]),
        ],
      },
      opts,
    );
    const after = Date.now();
    const res = await tracing.anomalousTraces({}, opts);
    expect(res.thresholdMs).toBe(500n);
    expect(res.traces.map((t) => [t.traceId, t.totalDurationMs, t.spanCount, t.errorCount, t.rootServiceName, t.rootOperationName])).toEqual([
      [t3000, 3000n, 1, 0, "edge", "GET /b"],
      [tieFirst, 2000n, 1, 0, "edge", tieFirst === t2000a ? "GET /c" : "GET /d"],
      [tieSecond, 2000n, 1, 0, "edge", tieSecond === t2000a ? "GET /c" : "GET /d"],
      [t1500, 1500n, 2, 1, "edge", "GET /a"],
      [rootless, 700n, 1, 0, "", ""],
    ]);
    for (const trace of res.traces) {
      const firstSeenMs = Number(nsOf(trace.firstSeen) / 1_000_000n);
      expect(firstSeenMs).toBeGreaterThanOrEqual(before);
      expect(firstSeenMs).toBeLessThanOrEqual(after);
    }
    const limited = await tracing.anomalousTraces({ limit: 2 }, opts);
    expect(limited.traces.map((t) => t.traceId)).toEqual([t3000, tieFirst]);
  });

  it("reads a limit of 0 as the default: 100 anomalous traces, 1000 incomplete traces, 50 slow spans", async () => {
    const tracing = await start({ "anomaly-threshold": "10" });
    const slowTraces = Array.from({ length: 101 }, () => newTraceId());
    const incomplete = Array.from({ length: 1001 }, () => newTraceId());
    const wide = newTraceId();
    await tracing.ingestBatch(
      {
        spans: [
          ...slowTraces.map((trace, i) => spanMessage({ trace, id: "root", start: 0, end: 20 + i })),
          ...incomplete.map((trace) => spanMessage({ trace, id: "child", parent: "root", start: 0, end: 1 })),
          ...traceSpans(wide, [
            { id: "root", start: 0, end: 9 },
            ...Array.from({ length: 60 }, (_, i) => ({ id: `w${i}`, parent: "root", start: 1, end: 3 })),
          ]),
        ],
      },
      opts,
    );
    const anomalous = await tracing.anomalousTraces({ limit: 0 }, opts);
    expect(anomalous.traces).toHaveLength(100);
    expect(anomalous.traces[0]!.traceId).toBe(slowTraces[100]);
    expect(anomalous.traces[99]!.traceId).toBe(slowTraces[1]);
    expect((await tracing.anomalousTraces({ limit: 1000 }, opts)).traces).toHaveLength(101);
    const listed = await tracing.incompleteTraces({ limit: 0 }, opts);
    expect(listed.traceIds).toEqual(incomplete.slice(0, 1000));
    expect((await tracing.incompleteTraces({ limit: 10_000 }, opts)).traceIds).toEqual(incomplete);
    expect((await tracing.slowSpanAnalysis({ traceId: wide, thresholdMs: 1, limit: 0 }, opts)).spans).toHaveLength(50);
    expect((await tracing.slowSpanAnalysis({ traceId: wide, thresholdMs: 1, limit: 100 }, opts)).spans).toHaveLength(61);
  });

  it("reports SLO compliance against the SLOs configured with --service-slos", async () => {
    const tracing = await start({ "service-slos": "api=50,db=2.5" });
    await tracing.ingestBatch(
      {
        spans: traceSpans(newTraceId(), [
          { id: "root", service: "api", start: 0, end: 40 },
          { id: "q1", parent: "root", service: "db", start: 1, end: 3 },
          { id: "q2", parent: "root", service: "db", start: 4, end: 7 },
          { id: "other", parent: "root", service: "discovery", start: 8, end: 100 },
        ]),
      },
      opts,
    );
    const res = await tracing.sloComplianceReport({}, opts);
    expect(res.services.map((s) => [s.serviceName, s.sloMs, s.p99Ms, s.compliancePct, s.violations, s.sampleCount])).toEqual([
      ["api", 50, 40n, 100, 0, 1],
      ["db", 2.5, 3n, 50, 1, 2],
    ]);
  });
});
