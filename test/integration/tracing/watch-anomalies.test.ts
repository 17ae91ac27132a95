import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  AnomalyEventType,
  AnomalyReason,
  SpanStatus,
  TraceCollectorService,
  type AnomalyChange,
  type AnomalyWatchStarted,
  type WatchAnomaliesResponse,
} from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { controlPlanesPerTest } from "../../fixtures/control-plane.js";
import { nextWithin } from "../../fixtures/streams.js";
import { callOptions as opts, newTraceId, nsOf, spanMessage } from "../../fixtures/tracing.js";

type Tracing = Client<typeof TraceCollectorService>;
type Stream = AsyncIterator<WatchAnomaliesResponse>;

function watch(tracing: Tracing, request: { serviceName?: string; minDurationMs?: number; startRevision?: number } = {}): Stream {
  return tracing
    .watchAnomalies(
      {
        serviceName: request.serviceName ?? "",
        minDurationMs: BigInt(request.minDurationMs ?? 0),
        startRevision: BigInt(request.startRevision ?? 0),
      },
      { timeoutMs: 30_000 },
    )
    [Symbol.asyncIterator]();
}

async function next(stream: Stream, timeoutMs = 5000): Promise<WatchAnomaliesResponse> {
  const result = await nextWithin(stream, timeoutMs);
  if (result.done === true) throw new Error("stream ended");
  return result.value;
}

async function started(stream: Stream): Promise<AnomalyWatchStarted> {
  const message = await next(stream);
  if (message.message.case !== "started") throw new Error(`expected started, got ${message.message.case}`);
  return message.message.value;
}

/** The next change, skipping progress messages. */
async function nextChange(stream: Stream, timeoutMs = 5000): Promise<AnomalyChange> {
  for (;;) {
    const message = await next(stream, timeoutMs);
    if (message.message.case === "change") return message.message.value;
    if (message.message.case !== "progress") throw new Error(`expected a change, got ${message.message.case}`);
  }
}

/** A change as [revision, [type, trace_id] per event]. */
function brief(change: AnomalyChange): [number, [AnomalyEventType, string][]] {
  return [Number(change.revision), change.events.map((e) => [e.type, e.anomaly!.traceId])];
}

/** Reads changes until `revision` is reached; returns them all. */
async function changesThrough(stream: Stream, revision: number): Promise<AnomalyChange[]> {
  const seen: AnomalyChange[] = [];
  while (seen.length === 0 || Number(seen.at(-1)!.revision) < revision) seen.push(await nextChange(stream));
  return seen;
}

/** A single-span trace lasting `durationMs`, rooted in `service`. */
function slowTrace(trace: string, durationMs: number, service = "edge", op = "GET /slow") {
  return spanMessage({ trace, id: "root", service, op, start: 0, end: durationMs });
}

const { DETECTED, UPDATED } = AnomalyEventType;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("WatchAnomalies", () => {
  const start = controlPlanesPerTest({ "anomaly-threshold": "100" });

  it.each(["grpc", "connect"] as const)(
    "over %s: starts, reports DETECTED once a trace crosses the threshold, then UPDATED (never a repeat) when it gets worse",
    async (transport) => {
      const server = await start();
      const tracing = transport === "grpc" ? server.grpc(TraceCollectorService) : server.http(TraceCollectorService);
      const stream = watch(tracing);
      const first = await started(stream);
      expect(first).toMatchObject({ revision: 0n, reset: false });

      const trace = newTraceId();
      // Not anomalous yet: 50 ms.
      await tracing.ingest({ span: spanMessage({ trace, id: "root", service: "shop", op: "GET /cart", start: 0, end: 50 }) }, opts);
      const child = spanMessage({ trace, id: "child", parent: "root", service: "db", start: 10, end: 150 });
      const before = Date.now();
      await tracing.ingest({ span: child }, opts);
      const after = Date.now();
      const detected = await nextChange(stream);
      expect(detected.revision).toBe(1n);
      expect(detected.events).toHaveLength(1);
      const event = detected.events[0]!;
      expect(event.type).toBe(DETECTED);
      expect(event.anomaly).toMatchObject({
        traceId: trace,
        totalDurationMs: 150n,
        errorCount: 0,
        spanCount: 2,
        rootServiceName: "shop",
        rootOperationName: "GET /cart",
        reasons: [AnomalyReason.DURATION],
        reason: "total duration 150 ms is over the 100 ms threshold",
      });
      const detectedMs = Number(nsOf(event.anomaly!.detectedAt) / 1_000_000n);
      expect(detectedMs).toBeGreaterThanOrEqual(before);
      expect(detectedMs).toBeLessThanOrEqual(after);

      // Identical re-ingest, and a span that makes it no worse: nothing.
      expect((await tracing.ingest({ span: child }, opts)).duplicate).toBe(true);
      expect(await tracing.ingestBatch({ spans: [child] }, opts)).toMatchObject({ duplicates: 1 });
      await tracing.ingest({ span: spanMessage({ trace, id: "inner", parent: "root", service: "db", start: 20, end: 30 }) }, opts);
      // Not anomalous: nothing either.
      await tracing.ingest({ span: slowTrace(newTraceId(), 100) }, opts);

      await tracing.ingest({ span: spanMessage({ trace, id: "late", parent: "root", service: "db", start: 100, end: 200 }) }, opts);
      const updated = await nextChange(stream);
      expect(updated.revision).toBe(2n);
      expect(updated.events.map((e) => e.type)).toEqual([UPDATED]);
      expect(updated.events[0]!.anomaly).toMatchObject({
        traceId: trace,
        totalDurationMs: 200n,
        spanCount: 4,
        rootServiceName: "shop",
        reasons: [AnomalyReason.DURATION],
        reason: "total duration 200 ms is over the 100 ms threshold",
      });

      // A marker: the next change is the next revision, so nothing came in between.
      const marker = newTraceId();
      await tracing.ingest({ span: slowTrace(marker, 101) }, opts);
      expect(brief(await nextChange(stream))).toEqual([3, [[DETECTED, marker]]]);
      await stream.return?.();
    },
  );

  it("filters by root service and minimum duration, one message per revision with only the matching events", async () => {
    const server = await start();
    const tracing = server.grpc(TraceCollectorService);
    const byService = watch(tracing, { serviceName: "wf-front" });
    const byDuration = watch(tracing, { minDurationMs: 300 });
    const all = watch(tracing);
    for (const stream of [byService, byDuration, all]) await started(stream);

    const [t1, t2, t3, t4, t5, t6, t7] = Array.from({ length: 7 }, () => newTraceId()) as [string, string, string, string, string, string, string];
    const batch = await tracing.ingestBatch(
      {
        spans: [
          slowTrace(t1, 200, "wf-front"),
          // Exactly the minimum: "at least" includes it.
          slowTrace(t2, 300, "wf-back"),
          slowTrace(t3, 500, "wf-front"),
          // No root yet: its root service is unknown.
          spanMessage({ trace: t4, id: "child", parent: "root", service: "wf-front", start: 0, end: 350 }),
          slowTrace(t5, 50, "wf-front"),
        ],
      },
      opts,
    );
    expect(batch.ingested).toBe(5);
    expect(brief(await nextChange(all))).toEqual([1, [[DETECTED, t1], [DETECTED, t2], [DETECTED, t3], [DETECTED, t4]]]);
    expect(brief(await nextChange(byService))).toEqual([1, [[DETECTED, t1], [DETECTED, t3]]]);
    expect(brief(await nextChange(byDuration))).toEqual([1, [[DETECTED, t2], [DETECTED, t3], [DETECTED, t4]]]);

    // The root arrives: an update that a watch on its service now sees.
    await tracing.ingest({ span: spanMessage({ trace: t4, id: "root", service: "wf-front", op: "GET /late", start: -10, end: 360 }) }, opts);
    const rooted = await nextChange(byService);
    expect(brief(rooted)).toEqual([2, [[UPDATED, t4]]]);
    expect(rooted.events[0]!.anomaly).toMatchObject({ totalDurationMs: 370n, rootServiceName: "wf-front", rootOperationName: "GET /late" });
    expect(brief(await nextChange(byDuration))).toEqual([2, [[UPDATED, t4]]]);
    expect(brief(await nextChange(all))).toEqual([2, [[UPDATED, t4]]]);

    await tracing.ingest({ span: slowTrace(t6, 150, "wf-back") }, opts);
    await tracing.ingest({ span: slowTrace(t7, 600, "wf-front") }, opts);
    expect(brief(await nextChange(all))).toEqual([3, [[DETECTED, t6]]]);
    expect(brief(await nextChange(all))).toEqual([4, [[DETECTED, t7]]]);
    expect(brief(await nextChange(byService))).toEqual([4, [[DETECTED, t7]]]);
    expect(brief(await nextChange(byDuration))).toEqual([4, [[DETECTED, t7]]]);
    for (const stream of [byService, byDuration, all]) await stream.return?.();
  });

  it("reports the error condition of --anomaly-min-errors, and updates as errors and duration grow", async () => {
    const server = await start({ "anomaly-threshold": "10000", "anomaly-min-errors": "2" });
    const tracing = server.grpc(TraceCollectorService);
    const stream = watch(tracing);
    await started(stream);
    const trace = newTraceId();
    const span = (id: string, status: SpanStatus, end = 10) =>
      spanMessage({ trace, id, parent: "root", service: "db", status, start: 1, end });
    await tracing.ingestBatch(
      { spans: [spanMessage({ trace, id: "root", service: "api", op: "POST /pay", start: 0, end: 50 }), span("e1", SpanStatus.ERROR)] },
      opts,
    );
    await tracing.ingest({ span: span("e2", SpanStatus.TIMEOUT) }, opts);
    const detected = await nextChange(stream);
    expect(brief(detected)).toEqual([1, [[DETECTED, trace]]]);
    expect(detected.events[0]!.anomaly).toMatchObject({
      errorCount: 2,
      totalDurationMs: 50n,
      reasons: [AnomalyReason.ERRORS],
      reason: "2 error spans reach the threshold of 2",
    });
    // CANCELLED is not an error: nothing.
    await tracing.ingest({ span: span("c1", SpanStatus.CANCELLED) }, opts);
    await tracing.ingest({ span: span("e3", SpanStatus.ERROR) }, opts);
    const moreErrors = await nextChange(stream);
    expect(brief(moreErrors)).toEqual([2, [[UPDATED, trace]]]);
    expect(moreErrors.events[0]!.anomaly).toMatchObject({ errorCount: 3, reasons: [AnomalyReason.ERRORS] });
    await tracing.ingest({ span: span("slow", SpanStatus.OK, 20_000) }, opts);
    const slower = await nextChange(stream);
    expect(brief(slower)).toEqual([3, [[UPDATED, trace]]]);
    expect(slower.events[0]!.anomaly).toMatchObject({
      errorCount: 3,
      totalDurationMs: 20_000n,
      // root, e1, e2, c1, e3, slow
      spanCount: 6,
      reasons: [AnomalyReason.DURATION, AnomalyReason.ERRORS],
      reason: "total duration 20000 ms is over the 10000 ms threshold; 3 error spans reach the threshold of 2",
    });
    await stream.return?.();
  });

  it("resumes after revision N with exactly the changes after N across a server restart, then ends with UNAVAILABLE on shutdown", async () => {
    const first = await start();
    const dir = first.dir;
    const tracing = first.grpc(TraceCollectorService);
    const stream = watch(tracing);
    expect((await started(stream)).revision).toBe(0n);
    const traces = Array.from({ length: 5 }, () => newTraceId());
    for (const [i, trace] of traces.entries()) await tracing.ingest({ span: slowTrace(trace, 200 + i) }, opts);
    // The client saw up to the third change, then lost its connection.
    expect((await changesThrough(stream, 3)).map(brief)).toEqual(traces.slice(0, 3).map((t, i) => [i + 1, [[DETECTED, t]]]));
    await first.controlPlane.shutdown();
    let end: unknown;
    while (end === undefined) end = await nextWithin(stream).then(() => undefined, (e: unknown) => e);
    expect(end).toBeInstanceOf(ConnectError);
    expect((end as ConnectError).code).toBe(Code.Unavailable);

    const second = await start({}, dir);
    const tracing2 = second.grpc(TraceCollectorService);
    expect((await tracing2.getTrace({ traceId: traces[0]! }, opts)).trace?.totalDurationMs).toBe(200n);
    const later = newTraceId();
    await tracing2.ingest({ span: slowTrace(later, 300, "edge", "GET /after-restart") }, opts);
    // Known before the restart: a worse state is an update, not a new detection.
    await tracing2.ingest({ span: spanMessage({ trace: traces[0]!, id: "late", parent: "root", start: 10, end: 250 }) }, opts);
    const resumed = watch(tracing2, { startRevision: 3 });
    // No started message: the changes after 3 follow at once, read back from the database.
    const changes = [await nextChange(resumed), await nextChange(resumed), await nextChange(resumed), await nextChange(resumed)];
    expect(changes.map(brief)).toEqual([
      [4, [[DETECTED, traces[3]!]]],
      [5, [[DETECTED, traces[4]!]]],
      [6, [[DETECTED, later]]],
      [7, [[UPDATED, traces[0]!]]],
    ]);
    expect(changes[3]!.events[0]!.anomaly).toMatchObject({ totalDurationMs: 250n, spanCount: 2 });
    expect(changes[1]!.events[0]!.anomaly).toMatchObject({
      totalDurationMs: 204n,
      spanCount: 1,
      rootServiceName: "edge",
      rootOperationName: "GET /slow",
      reasons: [AnomalyReason.DURATION],
      reason: "total duration 204 ms is over the 100 ms threshold",
    });
    expect(changes[1]!.events[0]!.anomaly!.detectedAt).toBeDefined();
    await resumed.return?.();
  });

  it("answers a start revision older than the retained history, or beyond it, with a reset; recent ones still resume", async () => {
    const server = await start({ "history-changes": "2", "history-age": "0", "compact-interval": "0.05" });
    const tracing = server.grpc(TraceCollectorService);
    const traces = Array.from({ length: 6 }, () => newTraceId());
    for (const trace of traces) await tracing.ingest({ span: slowTrace(trace, 150) }, opts);
    await sleep(300);

    const compacted = watch(tracing, { startRevision: 1 });
    expect(await started(compacted)).toMatchObject({ revision: 6n, reset: true });
    const beyond = watch(tracing, { startRevision: 50 });
    expect(await started(beyond)).toMatchObject({ revision: 6n, reset: true });
    const recent = watch(tracing, { startRevision: 4 });
    expect((await changesThrough(recent, 6)).map(brief)).toEqual([
      [5, [[DETECTED, traces[4]!]]],
      [6, [[DETECTED, traces[5]!]]],
    ]);

    const next7 = newTraceId();
    await tracing.ingest({ span: slowTrace(next7, 150) }, opts);
    for (const stream of [compacted, beyond, recent]) expect(brief(await nextChange(stream))).toEqual([7, [[DETECTED, next7]]]);
    // The reset told the client to re-read the current anomalies.
    const listed = await tracing.anomalousTraces({}, opts);
    expect(listed.traces.map((t) => t.traceId).sort()).toEqual([...traces, next7].sort());
    for (const stream of [compacted, beyond, recent]) await stream.return?.();
  });

  it("sends progress with the current revision while idle", async () => {
    const server = await start({ "watch-progress-interval": "0.05" });
    const tracing = server.grpc(TraceCollectorService);
    await tracing.ingest({ span: slowTrace(newTraceId(), 150) }, opts);
    const fromNow = watch(tracing);
    expect(await started(fromNow)).toMatchObject({ revision: 1n, reset: false });
    const fromOne = watch(tracing, { startRevision: 1 });
    for (const stream of [fromNow, fromOne]) {
      const message = await next(stream, 2000);
      expect(message.message.case).toBe("progress");
      expect(message.message.case === "progress" && message.message.value.revision).toBe(1n);
    }
    // After a change, progress carries the new revision.
    const trace = newTraceId();
    await tracing.ingest({ span: slowTrace(trace, 150) }, opts);
    expect(brief(await nextChange(fromNow))).toEqual([2, [[DETECTED, trace]]]);
    let progress: WatchAnomaliesResponse;
    do progress = await next(fromNow, 2000);
    while (progress.message.case !== "progress");
    expect(progress.message.value.revision).toBe(2n);
    for (const stream of [fromNow, fromOne]) await stream.return?.();
  });

  it("reports one DETECTED per trace under concurrent writers, then only updates that make it worse", async () => {
    const server = await start();
    const tracing = server.grpc(TraceCollectorService);
    const stream = watch(tracing);
    await started(stream);
    const trace = newTraceId();
    await tracing.ingest({ span: spanMessage({ trace, id: "root", service: "api", start: 0, end: 50 }) }, opts);
    // Every span makes the trace anomalous; which ones make it worse depends on commit order.
    const ends = Array.from({ length: 20 }, (_, i) => 150 + ((i * 7) % 20) * 10);
    await Promise.all(ends.map((end, i) => tracing.ingest({ span: spanMessage({ trace, id: `c${i}`, parent: "root", start: 1, end }) }, opts)));
    const marker = newTraceId();
    await tracing.ingest({ span: slowTrace(marker, 120) }, opts);
    const events: [AnomalyEventType, bigint][] = [];
    let revision = 0;
    for (;;) {
      const change = await nextChange(stream);
      expect(Number(change.revision)).toBe(++revision);
      if (change.events[0]!.anomaly!.traceId === marker) break;
      for (const e of change.events) events.push([e.type, e.anomaly!.totalDurationMs]);
    }
    expect(events[0]![0]).toBe(DETECTED);
    expect(events.slice(1).every(([type]) => type === UPDATED)).toBe(true);
    const durations = events.map(([, d]) => d);
    expect(durations.every((d, i) => i === 0 || d > durations[i - 1]!)).toBe(true);
    expect(durations.at(-1)).toBe(BigInt(Math.max(...ends)));
    await stream.return?.();
  });

  it("releases a watch the client cancels", async () => {
    const server = await start();
    const tracing = server.grpc(TraceCollectorService);
    const watchers = async (): Promise<string | undefined> =>
      /^latticeforge_anomaly_watchers (\d+)$/m.exec(await (await fetch(`${server.httpBaseUrl}/metrics`)).text())?.[1];
    const streams = [watch(tracing), watch(tracing, { serviceName: "x" })];
    for (const stream of streams) await started(stream);
    expect(await watchers()).toBe("2");
    for (const stream of streams) await stream.return?.();
    const deadline = Date.now() + 3000;
    while ((await watchers()) !== "0" && Date.now() < deadline) await sleep(20);
    expect(await watchers()).toBe("0");
  });

  it("lets a watcher that does not read fall behind (queue size 1) without stalling others, then catch up losing nothing", async () => {
    const server = await start({ "watch-queue-size": "1" });
    const tracing = server.grpc(TraceCollectorService);
    const slow = watch(tracing);
    const fast = watch(tracing);
    await started(slow);
    await started(fast);
    // Many changes (stream buffers count messages, about 16 a side) of large
    // events (a 1000-character root operation), from concurrent writers, so
    // that the slow stream's transport fills up and its queue overflows.
    const op = `GET /${"x".repeat(995)}`;
    const rounds = 20;
    const writers = 10;
    const changes = rounds * writers;
    const fastSeen = changesThrough(fast, changes);
    const sent: string[] = [];
    for (let round = 0; round < rounds; round++) {
      const results = await Promise.all(
        Array.from({ length: writers }, () => {
          const traces = Array.from({ length: 5 }, () => newTraceId());
          sent.push(...traces);
          return tracing.ingestBatch({ spans: traces.map((t) => slowTrace(t, 150, "edge", op)) }, opts);
        }),
      );
      expect(results.every((res) => res.ingested === 5)).toBe(true);
    }
    const fastChanges = await fastSeen;
    const revisions = Array.from({ length: changes }, (_, i) => i + 1);
    expect(fastChanges.map((c) => Number(c.revision))).toEqual(revisions);
    const fastIds = fastChanges.flatMap((c) => c.events.map((e) => e.anomaly!.traceId));
    expect(fastIds.slice().sort()).toEqual(sent.slice().sort());

    // The idle watcher overflowed its queue and waits to catch up from the log.
    const metrics = await (await fetch(`${server.httpBaseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^latticeforge_anomaly_unsynced_watchers 1$/m);
    const slowChanges = await changesThrough(slow, changes);
    expect(slowChanges.map((c) => Number(c.revision))).toEqual(revisions);
    expect(slowChanges.map(brief)).toEqual(fastChanges.map(brief));
    expect(slowChanges.every((c) => c.events.every((e) => e.type === DETECTED && e.anomaly!.rootOperationName === op))).toBe(true);
    await slow.return?.();
    await fast.return?.();
  });

  it.each(["grpc", "connect"] as const)("over %s: ends an open watch with UNAVAILABLE when the server shuts down", async (transport) => {
    const server = await start();
    const tracing = transport === "grpc" ? server.grpc(TraceCollectorService) : server.http(TraceCollectorService);
    const stream = watch(tracing);
    await started(stream);
    const shutdown = server.controlPlane.shutdown();
    let end: unknown;
    while (end === undefined) end = await nextWithin(stream).then(() => undefined, (e: unknown) => e);
    expect(end).toBeInstanceOf(ConnectError);
    expect((end as ConnectError).code).toBe(Code.Unavailable);
    await shutdown;
  });
});
