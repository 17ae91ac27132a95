import { describe, expect, it } from "vitest";
import { latencyBreakdown } from "../../../server/core/tracing/latency-breakdown.js";
import { selfTimeNs } from "../../../server/core/tracing/self-time.js";
import { ns, span, spans, type SpanSpec } from "./builders.js";

describe("selfTimeNs subtracts the union of the children clipped to the span", () => {
  const parent: SpanSpec = { id: "p", start: 0, end: 10 };
  it.each<[string, Omit<SpanSpec, "parent">[], number]>([
    ["no children: the whole duration", [], 10],
    ["one child inside", [{ id: "a", start: 2, end: 5 }], 7],
    ["two children one after another", [{ id: "a", start: 1, end: 3 }, { id: "b", start: 4, end: 8 }], 4],
    ["two overlapping children, overlap subtracted once", [{ id: "a", start: 1, end: 6 }, { id: "b", start: 4, end: 8 }], 3],
    ["a child nested in another child's interval", [{ id: "a", start: 1, end: 9 }, { id: "b", start: 3, end: 5 }], 2],
    ["three children chained by overlaps", [{ id: "a", start: 1, end: 3 }, { id: "b", start: 2, end: 5 }, { id: "c", start: 4, end: 7 }], 4],
    ["a child running past the end, clipped", [{ id: "a", start: 6, end: 15 }], 6],
    ["a child starting before the start, clipped", [{ id: "a", start: -5, end: 3 }], 7],
    ["a child entirely after the span: nothing", [{ id: "a", start: 11, end: 20 }], 10],
    ["a child entirely before the span: nothing", [{ id: "a", start: -9, end: -1 }], 10],
    ["a child covering the whole span: zero, never negative", [{ id: "a", start: -1, end: 11 }], 0],
    ["children covering it together: zero", [{ id: "a", start: 0, end: 6 }, { id: "b", start: 5, end: 10 }], 0],
    ["a zero-length child: nothing", [{ id: "a", start: 5, end: 5 }], 10],
    ["an async producer child still covers its time", [{ id: "a", start: 2, end: 4, kind: "producer" }], 8],
  ])("%s", (_, kids, expectedMs) => {
    const children = kids.map((kid) => span({ ...kid, parent: "p" }));
    expect(selfTimeNs(span(parent), children)).toBe(ns(expectedMs));
  });

  it("does not depend on the order of the children", () => {
    const kids = spans({ id: "b", parent: "p", start: 4, end: 8 }, { id: "a", parent: "p", start: 1, end: 6 });
    expect(selfTimeNs(span(parent), kids)).toBe(selfTimeNs(span(parent), [...kids].reverse()));
  });
});

describe("latencyBreakdown", () => {
  const trace = spans(
    { id: "r", start: 0, end: 100, service: "gateway" },
    { id: "a", parent: "r", start: 10, end: 50, service: "cart", status: "error" },
    { id: "b", parent: "r", start: 30, end: 70, service: "cart" },
    { id: "c", parent: "a", start: 20, end: 30, service: "db", status: "timeout" },
    { id: "d", parent: "b", start: 40, end: 50, service: "db" },
    { id: "e", parent: "b", start: 45, end: 60, service: "db" },
  );
  const rows = latencyBreakdown(trace);

  it("orders services by total_ms descending", () => {
    expect(rows.map((row) => row.serviceName)).toEqual(["gateway", "cart", "db"]);
  });

  it.each<[string, number, number, number, number]>([
    // gateway: children a ∪ b = [10, 70] → self 100 − 60
    ["gateway", 100, 40, 1, 0],
    // cart: a 40 − c 10 = 30; b 40 − (d ∪ e = [40, 60]) 20 = 20
    ["cart", 80, 50, 2, 0.5],
    // db: leaves
    ["db", 35, 35, 3, 1 / 3],
  ])("%s: total %s ms, self %s ms, %s spans, error rate %s", (service, totalMs, selfMs, spanCount, errorRate) => {
    const row = rows.find((r) => r.serviceName === service);
    expect(row).toMatchObject({ totalMs, selfMs, spanCount });
    expect(row?.errorRate).toBeCloseTo(errorRate, 12);
  });

  it("breaks total_ms ties by service name", () => {
    const tied = latencyBreakdown(
      spans({ id: "r", start: 0, end: 5, service: "zeta" }, { id: "x", start: 0, end: 5, service: "alpha" }),
    );
    expect(tied.map((row) => row.serviceName)).toEqual(["alpha", "zeta"]);
  });

  it("sums in nanoseconds and floors once", () => {
    const [row] = latencyBreakdown(spans({ id: "a", start: 0, end: 0.6 }, { id: "b", start: 0, end: 0.6 }));
    expect(row).toMatchObject({ totalNs: 1_200_000n, totalMs: 1, selfMs: 1 });
  });

  it("counts an orphan for its own service and as nobody's child", () => {
    const [row] = latencyBreakdown(spans({ id: "r", start: 0, end: 10 }, { id: "o", parent: "gone", start: 2, end: 4 }));
    expect(row).toMatchObject({ totalMs: 12, selfMs: 12, spanCount: 2 });
  });

  it("is empty for no spans", () => {
    expect(latencyBreakdown([])).toEqual([]);
  });
});
