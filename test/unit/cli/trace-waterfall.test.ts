import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { SpanStatus, TraceTreeSchema, type Span, type TraceTree } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { formatMs, minimumBarWidth, renderWaterfall, waterfallBarWidth } from "../../../client/trace-waterfall.js";
import { spanId, spanMessage, type SpanSpec } from "../../fixtures/tracing.js";

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";

/**
 * A TraceTree message as GetTrace answers it: spans ordered by start time
 * then span_id, with the counts and orphans filled in.
 */
function tree(...specs: Omit<SpanSpec, "trace">[]): TraceTree {
  const spans = specs
    .map((spec) => spanMessage({ ...spec, trace: traceId }))
    .sort((a, b) => compareStart(a, b) || (a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0));
  const ids = new Set(spans.map((s) => s.spanId));
  return create(TraceTreeSchema, {
    traceId,
    rootSpan: spans.find((s) => s.parentSpanId === ""),
    spans,
    serviceCount: new Set(spans.map((s) => s.serviceName)).size,
    errorCount: spans.filter((s) => s.status === SpanStatus.ERROR || s.status === SpanStatus.TIMEOUT).length,
    orphanSpanIds: spans.filter((s) => s.parentSpanId !== "" && !ids.has(s.parentSpanId)).map((s) => s.spanId),
  });
}

function compareStart(a: Span, b: Span): number {
  const diff = a.startTime!.seconds - b.startTime!.seconds || BigInt(a.startTime!.nanos - b.startTime!.nanos);
  return diff < 0n ? -1 : diff > 0n ? 1 : 0;
}

/** The checkout trace the README draws: 120 ms, one error two levels down. */
const checkout = tree(
  { id: "root", service: "frontend", op: "GET /checkout", start: 0, end: 120 },
  { id: "cart", parent: "root", service: "cart", op: "GetCart", start: 5, end: 40 },
  { id: "order", parent: "root", service: "checkout", op: "PlaceOrder", start: 45, end: 115 },
  { id: "charge", parent: "order", service: "payments", op: "Charge", start: 50, end: 110, status: SpanStatus.ERROR },
);

describe("renderWaterfall", () => {
  it("draws offset, a bar on the trace's time axis, duration and the indented name, children under their parent", () => {
    // 24 cells over 120 ms: 5 ms per cell.
    expect(renderWaterfall(checkout, { barWidth: 24 })).toEqual([
      "trace 4bf92f3577b34da6a3ce929d0e0e4736  120.000 ms  4 spans  4 services  1 error",
      "OFFSET MS  TIMELINE                    DURATION MS  SPAN",
      "    0.000  |████████████████████████|      120.000  frontend:GET /checkout",
      "    5.000  | ███████                |       35.000    cart:GetCart",
      "   45.000  |         ██████████████ |       70.000    checkout:PlaceOrder",
      "   50.000  |          ████████████  |       60.000      payments:Charge  ✗ error",
    ]);
  });

  it("places children depth-first under their parent, not in global start order", () => {
    const t = tree(
      { id: "root", service: "a", op: "root", start: 0, end: 100 },
      { id: "x", parent: "root", service: "a", op: "x", start: 10, end: 60 },
      { id: "y", parent: "root", service: "a", op: "y", start: 20, end: 90 },
      { id: "x1", parent: "x", service: "b", op: "x1", start: 30, end: 50 },
    );
    expect(renderWaterfall(t, { barWidth: 10 }).slice(2)).toEqual([
      "    0.000  |██████████|      100.000  a:root",
      "   10.000  | █████    |       50.000    a:x",
      "   30.000  |   ██     |       20.000      b:x1",
      "   20.000  |  ███████ |       70.000    a:y",
    ]);
  });

  it("appends span ids with spanIds, and marks TIMEOUT like ERROR", () => {
    const t = tree(
      { id: "root", service: "api", op: "GET /", start: 0, end: 10 },
      { id: "db", parent: "root", service: "db", op: "query", start: 2, end: 10, status: SpanStatus.TIMEOUT },
    );
    expect(renderWaterfall(t, { barWidth: 10, spanIds: true }).slice(2)).toEqual([
      `    0.000  |██████████|       10.000  api:GET / [${spanId("root")}]`,
      `    2.000  |  ████████|        8.000    db:query [${spanId("db")}]  ✗ timeout`,
    ]);
  });

  it("starts an orphan's subtree at depth 0, in start order, naming the missing parent", () => {
    const t = tree(
      { id: "root", service: "web", op: "GET /", start: 0, end: 100 },
      { id: "late", parent: "gone", service: "worker", op: "job", start: 50, end: 100 },
      { id: "step", parent: "late", service: "worker", op: "step", start: 60, end: 70 },
      { id: "early", parent: "root", service: "web", op: "auth", start: 70, end: 80 },
    );
    const lines = renderWaterfall(t, { barWidth: 10 });
    expect(lines[0]).toBe("trace 4bf92f3577b34da6a3ce929d0e0e4736  100.000 ms  4 spans  2 services  0 errors  1 orphan");
    expect(lines.slice(2)).toEqual([
      "    0.000  |██████████|      100.000  web:GET /",
      "   70.000  |       █  |       10.000    web:auth",
      `   50.000  |     █████|       50.000  worker:job  (orphan: parent ${spanId("gone")} not in trace)`,
      "   60.000  |      █   |       10.000    worker:step",
    ]);
  });

  it("gives a span shorter than a cell one cell, inside the bar", () => {
    const t = tree(
      { id: "root", service: "s", op: "r", start: 0, end: 1000 },
      { id: "blip", parent: "root", service: "s", op: "blip", start: 500, end: 500.25 },
      { id: "tail", parent: "root", service: "s", op: "tail", start: 999.9, end: 1000 },
    );
    expect(renderWaterfall(t, { barWidth: 8 }).slice(2)).toEqual([
      "    0.000  |████████|     1000.000  s:r",
      "  500.000  |    █   |        0.250    s:blip",
      "  999.900  |       █|        0.100    s:tail",
    ]);
  });

  it("keeps microsecond digits and widens the columns for long times", () => {
    const t = tree(
      { id: "root", service: "batch", op: "nightly", start: 0, end: 12_345_678.9 },
      { id: "step", parent: "root", service: "batch", op: "step", start: 10_000_000.0015, end: 10_000_000.0025 },
    );
    expect(renderWaterfall(t, { barWidth: 4 }).slice(1)).toEqual([
      "   OFFSET MS  TIMELINE   DURATION MS  SPAN",
      "       0.000  |████|    12345678.900  batch:nightly",
      "10000000.001  |   █|           0.001    batch:step",
    ]);
  });

  it("draws a zero-length trace with every span in the first cell, under a header wider than the bar", () => {
    const t = tree(
      { id: "root", service: "s", op: "r", start: 5, end: 5 },
      { id: "c", parent: "root", service: "s", op: "c", start: 5, end: 5 },
    );
    expect(renderWaterfall(t, { barWidth: 3 }).slice(1)).toEqual([
      "OFFSET MS  TIMELINE  DURATION MS  SPAN",
      "    0.000  |█  |           0.000  s:r",
      "    0.000  |█  |           0.000    s:c",
    ]);
  });

  it("still lists spans caught in a parent cycle (bad data): from the earliest, at depth 0", () => {
    const t = tree(
      { id: "root", service: "s", op: "r", start: 0, end: 10 },
      { id: "p", parent: "q", service: "s", op: "p", start: 1, end: 2 },
      { id: "q", parent: "p", service: "s", op: "q", start: 3, end: 4 },
    );
    expect(renderWaterfall(t, { barWidth: 10 }).slice(2)).toEqual([
      "    0.000  |██████████|       10.000  s:r",
      "    1.000  | █        |        1.000  s:p",
      "    3.000  |   █      |        1.000    s:q",
    ]);
  });

  it("handles a 5,000-level chain without recursion", () => {
    const specs: Omit<SpanSpec, "trace">[] = [{ id: "n0", service: "s", op: "n0", start: 0, end: 5000 }];
    for (let i = 1; i < 5000; i++) specs.push({ id: `n${i}`, parent: `n${i - 1}`, service: "s", op: `n${i}`, start: i, end: 5000 });
    const lines = renderWaterfall(tree(...specs), { barWidth: 10 });
    expect(lines).toHaveLength(5002);
    expect(lines[5001]!.endsWith(`${" ".repeat(2 * 4999)}s:n4999`)).toBe(true);
  });
});

describe("waterfallBarWidth", () => {
  it("fills the terminal: every line is exactly as wide as the widest allowed", () => {
    const width = waterfallBarWidth(checkout, 100);
    const lines = renderWaterfall(checkout, { barWidth: width }).slice(1);
    expect(Math.max(...lines.map((line) => line.length))).toBe(100);
  });

  it("counts the span ids when they are shown", () => {
    expect(waterfallBarWidth(checkout, 120, { spanIds: true })).toBe(waterfallBarWidth(checkout, 120) - " [0123456789abcdef]".length);
  });

  it("never goes below the minimum on a narrow terminal", () => {
    expect(waterfallBarWidth(checkout, 30)).toBe(minimumBarWidth);
  });
});

describe("formatMs", () => {
  it.each([
    [0n, "0.000"],
    [999n, "0.000"],
    [1_000n, "0.001"],
    [1_234_567n, "1.234"],
    [120_000_000n, "120.000"],
    [-1_500_000n, "-1.500"],
  ])("%s ns is %s ms", (ns, text) => {
    expect(formatMs(ns)).toBe(text);
  });
});
