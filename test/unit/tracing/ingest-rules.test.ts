import { describe, expect, it } from "vitest";
import {
  decideIngest,
  expiryCutoffMs,
  isTraceExpired,
  planIngestBatch,
  type IngestLookup,
  type SpanKey,
  type TraceIngestState,
} from "../../../server/core/tracing/ingest-rules.js";
import { defaultCollectorLimits } from "../../../server/core/tracing/model.js";
import { nowMs } from "./builders.js";

const limits = defaultCollectorLimits({ maxSpansPerTrace: 3, traceTtlMs: 60_000 });
const key: SpanKey = { traceId: "t1", spanId: "s1" };

/** A lookup over stored traces: trace id → stored span ids, first seen. */
function lookup(stored: Record<string, { spans: string[]; firstSeenMs: number }>): IngestLookup & { reads: number } {
  const view = {
    reads: 0,
    trace(traceId: string): TraceIngestState | undefined {
      view.reads++;
      const entry = stored[traceId];
      return entry && { spanCount: entry.spans.length, firstSeenMs: entry.firstSeenMs };
    },
    hasSpan(traceId: string, spanId: string): boolean {
      return stored[traceId]?.spans.includes(spanId) ?? false;
    },
  };
  return view;
}

function keys(...pairs: string[]): SpanKey[] {
  return pairs.map((pair) => {
    const [traceId, spanId] = pair.split("/");
    return { traceId: traceId!, spanId: spanId! };
  });
}

describe("decideIngest", () => {
  it.each<[string, TraceIngestState | undefined, boolean, string, (string | number)[]]>([
    ["a span of a new trace is ingested and the trace first seen now", undefined, false, "ingested", [1, nowMs]],
    ["a span under the limit is ingested and counted", { spanCount: 1, firstSeenMs: nowMs - 10 }, false, "ingested", [2, nowMs - 10]],
    ["the span that reaches the limit is ingested", { spanCount: 2, firstSeenMs: nowMs }, false, "ingested", [3, nowMs]],
    ["a span beyond the limit is dropped as trace_full", { spanCount: 3, firstSeenMs: nowMs }, false, "dropped", ["trace_full"]],
    ["a trace exactly TTL old still takes spans", { spanCount: 1, firstSeenMs: nowMs - 60_000 }, false, "ingested", [2, nowMs - 60_000]],
    ["a trace first seen more than the TTL ago is dropped as trace_expired", { spanCount: 1, firstSeenMs: nowMs - 60_001 }, false, "dropped", ["trace_expired"]],
    ["expiry is decided before fullness", { spanCount: 3, firstSeenMs: nowMs - 60_001 }, false, "dropped", ["trace_expired"]],
    ["a stored span again is a duplicate", { spanCount: 1, firstSeenMs: nowMs }, true, "duplicate", []],
    ["a duplicate of a full trace is a duplicate, not dropped", { spanCount: 3, firstSeenMs: nowMs }, true, "duplicate", []],
    ["a duplicate of an expired trace is a duplicate, not dropped", { spanCount: 1, firstSeenMs: 0 }, true, "duplicate", []],
  ])("%s", (_, state, duplicate, outcome, detail) => {
    const decision = decideIngest(key, state, duplicate, nowMs, limits);
    expect(decision.outcome).toBe(outcome);
    if (decision.outcome === "ingested") expect([decision.trace.spanCount, decision.trace.firstSeenMs]).toEqual(detail);
    if (decision.outcome === "dropped") expect([decision.reason]).toEqual(detail);
  });

  it.each<[string, TraceIngestState, RegExp]>([
    ["full", { spanCount: 3, firstSeenMs: nowMs }, /^trace t1 is full: it holds the maximum of 3 spans$/],
    ["expired", { spanCount: 1, firstSeenMs: nowMs - 90_000 }, /^trace t1 has expired: first seen 90000 ms ago, over the 60000 ms TTL$/],
  ])("the %s message names the trace and the limit", (_, state, message) => {
    const decision = decideIngest(key, state, false, nowMs, limits);
    expect(decision.outcome === "dropped" && decision.message).toMatch(message);
  });
});

describe("expiry", () => {
  it.each<[number, boolean]>([
    [0, false],
    [59_999, false],
    [60_000, false],
    [60_001, true],
    [-5, false],
  ])("a trace first seen %s ms ago is expired: %s (and the pruning cutoff agrees)", (age, expired) => {
    const firstSeenMs = nowMs - age;
    expect(isTraceExpired({ spanCount: 1, firstSeenMs }, nowMs, limits)).toBe(expired);
    expect(firstSeenMs < expiryCutoffMs(nowMs, limits)).toBe(expired);
  });
});

describe("planIngestBatch", () => {
  it("counts ingested, dropped and duplicates", () => {
    const store = lookup({
      full: { spans: ["a", "b", "c"], firstSeenMs: nowMs },
      old: { spans: ["a"], firstSeenMs: nowMs - 61_000 },
      open: { spans: ["a"], firstSeenMs: nowMs - 1000 },
    });
    const plan = planIngestBatch(keys("full/d", "old/b", "open/a", "open/b", "fresh/a"), store, nowMs, limits);
    expect(plan.counts).toEqual({ ingested: 2, dropped: 2, duplicates: 1 });
    expect(plan.decisions.map((d) => d.outcome)).toEqual(["dropped", "dropped", "duplicate", "ingested", "ingested"]);
    expect(plan.accepted).toEqual(keys("open/b", "fresh/a"));
  });

  it("makes a repeat within the batch a duplicate", () => {
    const plan = planIngestBatch(keys("t/a", "t/a", "t/b", "t/a"), lookup({}), nowMs, limits);
    expect(plan.counts).toEqual({ ingested: 2, dropped: 0, duplicates: 2 });
  });

  it("counts spans accepted earlier in the batch towards the limit", () => {
    const store = lookup({ t: { spans: ["a"], firstSeenMs: nowMs } });
    const plan = planIngestBatch(keys("t/b", "t/c", "t/d", "t/e"), store, nowMs, limits);
    expect(plan.counts).toEqual({ ingested: 2, dropped: 2, duplicates: 0 });
    expect(plan.accepted).toEqual(keys("t/b", "t/c"));
    expect(plan.decisions[2]).toMatchObject({ outcome: "dropped", reason: "trace_full" });
  });

  it("fills a new trace up to the limit within one batch", () => {
    const plan = planIngestBatch(keys("n/a", "n/b", "n/c", "n/d"), lookup({}), nowMs, limits);
    expect(plan.counts).toEqual({ ingested: 3, dropped: 1, duplicates: 0 });
    expect(plan.traces.get("n")).toEqual({ spanCount: 3, firstSeenMs: nowMs });
  });

  it("reports the new state of exactly the traces that gained spans", () => {
    const store = lookup({
      full: { spans: ["a", "b", "c"], firstSeenMs: nowMs },
      open: { spans: ["a"], firstSeenMs: nowMs - 1000 },
    });
    const plan = planIngestBatch(keys("full/x", "open/b", "open/a", "new/a"), store, nowMs, limits);
    expect([...plan.traces]).toEqual([
      ["open", { spanCount: 2, firstSeenMs: nowMs - 1000 }],
      ["new", { spanCount: 1, firstSeenMs: nowMs }],
    ]);
  });

  it("reads each trace's stored state at most until it gains a span", () => {
    const store = lookup({ t: { spans: [], firstSeenMs: nowMs } });
    planIngestBatch(keys("t/a", "t/b", "t/c"), store, nowMs, limits);
    expect(store.reads).toBe(1);
  });

  it("answers an empty batch with zero counts", () => {
    const plan = planIngestBatch([], lookup({}), nowMs, limits);
    expect(plan.counts).toEqual({ ingested: 0, dropped: 0, duplicates: 0 });
    expect(plan.traces.size).toBe(0);
  });
});
