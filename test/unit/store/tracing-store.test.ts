import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AnomalyEvent } from "../../../server/core/tracing/anomalies.js";
import { defaultCollectorLimits, type CollectorLimits, type Span } from "../../../server/core/tracing/model.js";
import { closeDatabase, openDatabase, openReader, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";
import { migrations } from "../../../server/store/migrations.js";
import { encodeSpan } from "../../../server/store/tracing-codec.js";
import { tracingQueries } from "../../../server/store/tracing-queries.js";
import type { RevisionedChange } from "../../../server/store/revision-log.js";
import { rowsPerStep, TracingStore, type TraceRecord } from "../../../server/store/tracing-store.js";

const ms = 1_000_000n;
const base = 1_700_000_000_000n * ms;

function traceId(n: number): string {
  return n.toString(16).padStart(32, "0");
}

function spanId(n: number): string {
  return n.toString(16).padStart(16, "0");
}

/** A span of trace `t`, id `s`, starting `startMs` after `base` and lasting `durMs`. */
function span(t: number, s: number, overrides: Partial<Span> & { startMs?: number; durMs?: number } = {}): Span {
  const { startMs = 0, durMs = 10, ...rest } = overrides;
  const start = base + BigInt(startMs) * ms;
  return {
    traceId: traceId(t),
    spanId: spanId(s),
    serviceName: "svc",
    operationName: "op",
    kind: "server",
    status: "ok",
    startTimeNs: start,
    endTimeNs: start + BigInt(durMs) * ms,
    tags: {},
    logs: [],
    ...rest,
  };
}

/** A span read from the store as a plain value (its tags and logs are decoded on access, not own properties). */
function valueOf(stored: Span | undefined): Span | undefined {
  return stored === undefined ? undefined : { ...stored, tags: stored.tags, logs: stored.logs };
}

let db: SqliteDatabase;
/** The read-only connection of a file database; reads go through it and big writes run in steps. */
let reader: SqliteDatabase | undefined;
let committer: GroupCommitter;
let store: TracingStore;

function open(path: string, limits: Partial<CollectorLimits> = {}, maxDurationSamples?: number): void {
  db = openDatabase({ path, durability: "full", migrations });
  reader = openReader(db);
  committer = new GroupCommitter(db);
  store = new TracingStore(db, committer, {
    limits: defaultCollectorLimits(limits),
    ...(maxDurationSamples !== undefined ? { maxDurationSamples } : {}),
    ...(reader !== undefined ? { reader } : {}),
  });
}

function close(): void {
  committer.close();
  reader?.close();
  closeDatabase(db);
}

function planOf(sql: string, ...params: unknown[]): string {
  const rows = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
  return rows.map((row) => row.detail).join("\n");
}

describe.each([
  ["on :memory:", false],
  ["on a file, read through a reader (large writes run in steps)", true],
])("TracingStore %s", (_, onFile) => {
  let dir: string | undefined;
  /** A new database of this suite's kind. */
  const fresh = (): string => {
    if (!onFile) return ":memory:";
    dir ??= mkdtempSync(join(tmpdir(), "tracing-store-"));
    return join(dir, `lf-${Math.random().toString(36).slice(2)}.sqlite`);
  };
  beforeEach(() => open(fresh(), { maxSpansPerTrace: 5, traceTtlMs: 1000 }));
  afterEach(() => {
    close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("counts ingested spans of a batch and stores them field for field", async () => {
    const rich = span(1, 2, {
      parentSpanId: spanId(1),
      kind: "client",
      status: "timeout",
      tags: { "http.method": "GET" },
      logs: [{ timeNs: base + 5n, fields: { event: "retry" } }],
    });
    const result = await store.ingestBatch([span(1, 1), rich, span(2, 1)], 0);
    expect(result.counts).toEqual({ ingested: 3, dropped: 0, duplicates: 0 });
    expect(result.decisions.map((d) => d.outcome)).toEqual(["ingested", "ingested", "ingested"]);
    expect(valueOf(store.getSpan(traceId(1), spanId(2)))).toStrictEqual(rich);
    expect(valueOf(store.getSpan(traceId(1), spanId(1)))).toStrictEqual(span(1, 1));
    expect(store.getSpan(traceId(1), spanId(9))).toBeUndefined();
    expect(store.getSpan(traceId(9), spanId(1))).toBeUndefined();
  });

  it("stores spans whose attributes a decode worker encoded exactly as decoded ones", async () => {
    const rich = span(1, 2, {
      parentSpanId: spanId(1),
      status: "error",
      tags: { "http.method": "GET" },
      logs: [{ timeNs: base + 5n, fields: { event: "retry" } }],
    });
    const result = await store.ingestBatch([rich, span(1, 1)].map(encodeSpan), 0);
    expect(result.counts).toEqual({ ingested: 2, dropped: 0, duplicates: 0 });
    expect(valueOf(store.getSpan(traceId(1), spanId(2)))).toStrictEqual(rich);
    expect(valueOf(store.getSpan(traceId(1), spanId(1)))).toStrictEqual(span(1, 1));
    expect(store.traceRecord(traceId(1))).toMatchObject({ spanCount: 2, errorCount: 1, root: { spanId: spanId(1) } });
  });

  it("counts duplicates within one batch and across batches", async () => {
    const first = await store.ingestBatch([span(1, 1), span(1, 1), span(1, 2)], 0);
    expect(first.counts).toEqual({ ingested: 2, dropped: 0, duplicates: 1 });
    const second = await store.ingestBatch([span(1, 2), span(1, 3)], 0);
    expect(second.counts).toEqual({ ingested: 1, dropped: 0, duplicates: 1 });
    expect(store.traceRecord(traceId(1))?.spanCount).toBe(3);
    expect(store.traceSpans(traceId(1))).toHaveLength(3);
  });

  it("sees the writes of earlier ops in the same group commit", async () => {
    const [a, b] = await Promise.all([store.ingestBatch([span(1, 1)], 0), store.ingestBatch([span(1, 1)], 0)]);
    expect(a.counts.ingested).toBe(1);
    expect(b.counts.duplicates).toBe(1);
  });

  it("drops spans of a full trace with the reason, but still reports a repeat as a duplicate", async () => {
    const spans = [1, 2, 3, 4, 5, 6, 7].map((s) => span(1, s));
    const result = await store.ingestBatch(spans, 0);
    expect(result.counts).toEqual({ ingested: 5, dropped: 2, duplicates: 0 });
    expect(result.decisions[5]).toMatchObject({ outcome: "dropped", reason: "trace_full" });
    expect(await store.ingest(span(1, 8), 0)).toMatchObject({ outcome: "dropped", reason: "trace_full" });
    expect(await store.ingest(span(1, 1), 0)).toEqual({ outcome: "duplicate" });
    expect(store.traceRecord(traceId(1))?.spanCount).toBe(5);
  });

  it("drops spans of an expired trace but accepts them exactly at the TTL", async () => {
    await store.ingest(span(1, 1), 0);
    expect(await store.ingest(span(1, 2), 1000)).toMatchObject({ outcome: "ingested" });
    const late = await store.ingest(span(1, 3), 1001);
    expect(late).toMatchObject({ outcome: "dropped", reason: "trace_expired" });
    expect(store.traceSpans(traceId(1)).map((s) => s.spanId)).toEqual([spanId(1), spanId(2)]);
  });

  it("returns only the requested trace's spans", async () => {
    await store.ingestBatch([span(1, 1), span(2, 1), span(2, 2), span(3, 1)], 0);
    const spans = store.traceSpans(traceId(2));
    expect(spans.map((s) => [s.traceId, s.spanId])).toEqual([
      [traceId(2), spanId(1)],
      [traceId(2), spanId(2)],
    ]);
    expect(store.traceSpans(traceId(7))).toEqual([]);
  });

  it("lists children by start time, then span_id, within the trace only", async () => {
    const parent = spanId(1);
    await store.ingestBatch(
      [
        span(1, 1),
        span(1, 4, { parentSpanId: parent, startMs: 5 }),
        span(1, 3, { parentSpanId: parent, startMs: 1 }),
        span(1, 2, { parentSpanId: parent, startMs: 5 }),
        span(1, 5, { parentSpanId: spanId(2), startMs: 0 }),
        span(2, 9, { parentSpanId: parent, startMs: 0 }),
      ],
      0,
    );
    expect(store.children(traceId(1), parent).map((s) => s.spanId)).toEqual([spanId(3), spanId(2), spanId(4)]);
    expect(store.children(traceId(1), spanId(5))).toEqual([]);
  });

  it("keeps the trace row's summary and root as findRoot would pick it", async () => {
    await store.ingestBatch(
      [
        span(1, 2, { parentSpanId: spanId(1), startMs: 10, durMs: 50, status: "error" }),
        span(1, 3, { parentSpanId: spanId(1), startMs: 20, durMs: 100, status: "cancelled" }),
      ],
      7,
    );
    const before = store.traceRecord(traceId(1));
    expect(before).toMatchObject({ firstSeenMs: 7, spanCount: 2, errorCount: 1, totalDurationMs: 110 });
    expect(before?.root).toBeUndefined();
    await store.ingestBatch([span(1, 9, { startMs: 0, durMs: 5 }), span(1, 1, { startMs: 0, durMs: 200 })], 8);
    const after = store.traceRecord(traceId(1));
    expect(after).toMatchObject({ firstSeenMs: 7, spanCount: 4, errorCount: 1, totalDurationMs: 200 });
    expect(after?.root).toEqual({ spanId: spanId(1), serviceName: "svc", operationName: "op", startTimeNs: base });
  });

  it("lists traces with spans but no root, oldest first", async () => {
    await store.ingestBatch([span(1, 2, { parentSpanId: spanId(1) }), span(2, 1), span(3, 2, { parentSpanId: spanId(1) })], 0);
    await store.ingestBatch([span(4, 2, { parentSpanId: spanId(1) })], 0);
    expect(store.incompleteTraceIds(10)).toEqual([traceId(1), traceId(3), traceId(4)]);
    expect(store.incompleteTraceIds(1)).toEqual([traceId(1)]);
    await store.ingest(span(1, 1), 0);
    expect(store.incompleteTraceIds(10)).toEqual([traceId(3), traceId(4)]);
  });

  it("lists anomaly candidates over the threshold slowest first, then by trace_id", async () => {
    await store.ingestBatch(
      [
        span(1, 1, { durMs: 1500 }),
        span(2, 1, { durMs: 1000 }),
        span(3, 1, { durMs: 3000 }),
        span(4, 1, { durMs: 1500 }),
        span(5, 1, { durMs: 10 }),
        span(5, 2, { startMs: 990, durMs: 20 }),
      ],
      0,
    );
    const ids = (records: TraceRecord[]) => records.map((r) => r.traceId);
    expect(ids(store.anomalousCandidates(1000, 10))).toEqual([traceId(3), traceId(1), traceId(4), traceId(5)]);
    expect(ids(store.anomalousCandidates(1000, 2))).toEqual([traceId(3), traceId(1)]);
    expect(store.anomalousCandidates(1000, 10)[3]?.totalDurationMs).toBe(1010);
  });

  it("prunes expired traces with their spans in bounded batches", async () => {
    for (let t = 1; t <= 7; t++) await store.ingestBatch([span(t, 1), span(t, 2)], t * 10);
    const order: string[] = [];
    const done = store.pruneExpired(1060, 1000, 2).then((n) => {
      order.push("pruned");
      return n;
    });
    // An ingest queued while pruning commits between two pruning batches, not after the pass.
    const ingested = store.ingestBatch([span(100, 1)], 1060).then(() => order.push("ingested"));
    expect(await done).toBe(5);
    await ingested;
    expect(order).toEqual(["ingested", "pruned"]);
    for (let t = 1; t <= 5; t++) expect(store.traceSpans(traceId(t))).toEqual([]);
    expect(store.traceSpans(traceId(6))).toHaveLength(2);
    expect(db.prepare("SELECT count(*) FROM spans").pluck().get()).toBe(2 + 2 + 1);
    expect(await store.pruneExpired(1060, 1000, 2)).toBe(0);
    // A pruned trace id starts afresh.
    expect(await store.ingest(span(1, 1), 2000)).toMatchObject({ outcome: "ingested" });
  });

  it("returns a service's durations since a time, capped at the most recent samples", async () => {
    await store.ingestBatch(
      [
        span(1, 1, { serviceName: "a", startMs: 0, durMs: 5 }),
        span(1, 2, { serviceName: "a", startMs: 100, durMs: 7 }),
        span(1, 3, { serviceName: "b", startMs: 100, durMs: 9 }),
        span(2, 1, { serviceName: "a", startMs: 200, durMs: 1, endTimeNs: base + 200n * ms + 1_500_000n }),
      ],
      0,
    );
    expect(store.serviceDurationsMs("a").sort()).toEqual([1.5, 5, 7]);
    expect(store.serviceDurationsMs("a", 1_700_000_000_100).sort()).toEqual([1.5, 7]);
    expect(store.serviceDurationsMs("zzz")).toEqual([]);
    close();
    open(":memory:", {}, 2);
    await store.ingestBatch([0, 1, 2].map((i) => span(1, i + 1, { startMs: i, durMs: i + 1 })), 0);
    expect(store.serviceDurationsMs("svc")).toEqual([3, 2]);
  });

  it("counts cross-service parent→child calls", async () => {
    await store.ingestBatch(
      [
        span(1, 1, { serviceName: "gateway" }),
        span(1, 2, { serviceName: "discovery", parentSpanId: spanId(1) }),
        span(1, 3, { serviceName: "discovery", parentSpanId: spanId(2) }),
        span(2, 1, { serviceName: "gateway" }),
        span(2, 2, { serviceName: "discovery", parentSpanId: spanId(1) }),
        span(2, 3, { serviceName: "mirror", parentSpanId: spanId(2) }),
      ],
      0,
    );
    expect(store.dependencyEdges(["gateway", "discovery", "mirror"])).toEqual([
      { parentService: "discovery", childService: "mirror", callCount: 1 },
      { parentService: "gateway", childService: "discovery", callCount: 2 },
    ]);
  });

  it("logs an anomaly once per trace, in the ingest transaction, and tells listeners after commit", async () => {
    const changes: RevisionedChange<AnomalyEvent>[] = [];
    const off = store.onAnomalies((change) => changes.push(change));
    // Trace 1: a 2 s span (anomalous at the 1000 ms default); trace 2: a short one.
    await store.ingestBatch([span(1, 1, { durMs: 2000 }), span(2, 1, { durMs: 5 })], 10);
    // The same again (duplicates) and a span no longer than the trace: nothing new.
    await store.ingestBatch([span(1, 1, { durMs: 2000 }), span(1, 2, { parentSpanId: spanId(1), durMs: 10 })], 11);
    // Trace 1 grows: an update, not a repeat.
    await store.ingestBatch([span(1, 3, { parentSpanId: spanId(1), startMs: 1500, durMs: 1000 })], 12);
    off();
    expect(changes.map((c) => [c.revision, c.events.map((e) => [e.type, e.anomaly.traceId, e.anomaly.totalDurationMs])])).toEqual([
      [1, [["detected", traceId(1), 2000]]],
      [2, [["updated", traceId(1), 2500]]],
    ]);
    expect(store.anomalyLog.currentRevision).toBe(2);
    expect(store.anomalyLog.readAfter(0, 10)).toEqual(changes);
  });

  it("keeps the anomaly log's revision on a rolled-back batch", async () => {
    await store.ingestBatch([span(1, 1, { durMs: 2000 })], 0);
    db.exec("CREATE TRIGGER fail_insert BEFORE INSERT ON spans BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    await expect(store.ingestBatch([span(2, 1, { durMs: 3000 })], 0)).rejects.toThrow(/disk full/);
    db.exec("DROP TRIGGER fail_insert");
    expect(store.anomalyLog.currentRevision).toBe(1);
    await store.ingestBatch([span(3, 1, { durMs: 3000 })], 0);
    expect(store.anomalyLog.readAfter(1, 10).map((c) => [c.revision, c.events[0]?.anomaly.traceId])).toEqual([
      [2, traceId(3)],
    ]);
  });

  /** 300 traces of 5 spans over 3 services, every tenth without a root. */
  async function populate(): Promise<void> {
    const spans: Span[] = [];
    for (let t = 1; t <= 300; t++) {
      for (let s = 1; s <= 5; s++) {
        if (s === 1 && t % 10 === 0) continue;
        spans.push(span(t, s, { serviceName: `svc${s % 3}`, startMs: t + s, durMs: t, ...(s > 1 ? { parentSpanId: spanId(1) } : {}) }));
      }
    }
    close();
    open(fresh());
    await store.ingestBatch(spans, 0);
  }

  it("lists the services with spans, ascending", async () => {
    await populate();
    expect(store.serviceNames()).toEqual(["svc0", "svc1", "svc2"]);
  });

  it.each([
    ["traceById", ["a"], /SEARCH traces USING INDEX sqlite_autoindex_traces_1 \(trace_id=\?\)/],
    ["hasSpan", [1, "a"], /SEARCH spans USING COVERING INDEX spans_by_trace \(trace_key=\? AND span_id=\?\)/],
    ["spansOfTrace", ["a"], /SEARCH spans USING INDEX spans_by_trace \(trace_key=\?\)/],
    ["span", ["a", "b"], /SEARCH spans USING INDEX spans_by_trace \(trace_key=\? AND span_id=\?\)/],
    ["children", ["a", "b"], /SEARCH spans USING INDEX spans_by_trace \(trace_key=\?\)/],
    ["serviceDurations", ["svc1", 0, 5], /SEARCH spans USING COVERING INDEX spans_by_service \(service=\? AND start_ns>\?\)/],
    ["anomalousTraces", [0, 5], /SEARCH traces USING INDEX traces_by_duration \(duration_ns>\?\)/],
    ["incompleteTraces", [5], /SCAN traces USING INDEX traces_without_root/],
    ["expiredTraces", [0, 5], /SEARCH traces USING INDEX traces_by_first_seen \(first_seen_ms<\?\)/],
    ["deleteSpans", [1], /SEARCH spans USING (COVERING )?INDEX spans_by_trace \(trace_key=\?\)/],
    ["serviceNames", [], /SEARCH spans USING COVERING INDEX spans_by_service/],
    ["dependencyCalls", ["svc1", 0], /SEARCH c USING INDEX spans_by_service[^\n]*\n(.*\n)*SEARCH p USING INDEX spans_by_trace \(trace_key=\? AND span_id=\?\)/],
  ] as const)("plans %s through its index, never a full scan, before and after ANALYZE", async (name, params, expected) => {
    await populate();
    for (const analyzed of [false, true]) {
      if (analyzed) db.exec("ANALYZE");
      const plan = planOf(tracingQueries[name], ...params);
      expect(plan, `${name} (analyzed: ${analyzed})`).toMatch(expected);
      expect(plan).not.toMatch(/SCAN (spans|traces|c|p)$|SCAN (spans|traces|c|p)\n/m);
    }
  });
});

describe("TracingStore on a file", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tracing-store-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("writes an ingest of more than rowsPerStep spans in steps; reads between them see none of it", async () => {
    open(join(dir, "steps.sqlite"));
    try {
      await store.ingestBatch([span(1, 1)], 0);
      // 4 traces of 250 spans: 1,000 spans, at least 4 steps after planning.
      const batch = [2, 3, 4, 5].flatMap((t) => Array.from({ length: rowsPerStep }, (_, i) => span(t, i + 1)));
      let settled = false;
      const ingest = store.ingestBatch(batch, 0).finally(() => {
        settled = true;
      });
      // Served between steps: the committed trace, and none of the batch until it commits.
      const seen: [committed: number, batch: number][] = [];
      await new Promise<void>((resolve) => {
        const poll = (): void => {
          if (settled) return resolve();
          const batchSpans = [2, 3, 4, 5].reduce((sum, t) => sum + store.traceSpans(traceId(t)).length, 0);
          seen.push([store.traceSpans(traceId(1)).length, batchSpans]);
          setImmediate(poll);
        };
        setImmediate(poll);
      });
      expect((await ingest).counts).toEqual({ ingested: 1000, dropped: 0, duplicates: 0 });
      expect(seen.filter(([committed]) => committed !== 1)).toEqual([]);
      const counts = seen.map(([, count]) => count);
      expect(counts.filter((count) => count !== 0 && count !== 1000)).toEqual([]);
      expect(counts.filter((count) => count === 0).length).toBeGreaterThanOrEqual(4);
      expect(store.traceRecord(traceId(5))).toMatchObject({ spanCount: rowsPerStep });
    } finally {
      close();
    }
  });

  it("commits nothing of a stepped ingest that fails in a later step, and goes on with the next write", async () => {
    open(join(dir, "failing-steps.sqlite"));
    try {
      // The 600th span's insert fails: two steps after the first inserts.
      db.exec(`CREATE TRIGGER fail_insert BEFORE INSERT ON spans WHEN NEW.span_id = '${spanId(600)}' BEGIN SELECT RAISE(ABORT, 'disk full'); END`);
      const batch = [1, 2, 3].flatMap((t) => Array.from({ length: 250 }, (_, i) => span(t, t * 250 + i - 249)));
      await expect(store.ingestBatch(batch, 0)).rejects.toThrow(/disk full/);
      for (const t of [1, 2, 3]) expect(store.traceRecord(traceId(t))).toBeUndefined();
      expect(db.prepare("SELECT count(*) FROM spans").pluck().get()).toBe(0);
      db.exec("DROP TRIGGER fail_insert");
      expect((await store.ingestBatch(batch, 0)).counts.ingested).toBe(750);
    } finally {
      close();
    }
  });

  it("keeps acknowledged spans and trace state across a reopen", async () => {
    const path = join(dir, "db", "lf.sqlite");
    open(path, { maxSpansPerTrace: 3 });
    await store.ingestBatch([span(1, 1, { tags: { k: "v" } }), span(1, 2, { parentSpanId: spanId(1) })], 5);
    close();
    open(path, { maxSpansPerTrace: 3 });
    try {
      expect(store.traceSpans(traceId(1)).map(valueOf)).toStrictEqual([span(1, 1, { tags: { k: "v" } }), span(1, 2, { parentSpanId: spanId(1) })]);
      expect(store.traceRecord(traceId(1))).toMatchObject({ firstSeenMs: 5, spanCount: 2 });
      const result = await store.ingestBatch([span(1, 2), span(1, 3), span(1, 4)], 6);
      expect(result.counts).toEqual({ ingested: 1, dropped: 1, duplicates: 1 });
    } finally {
      close();
    }
  });
});
