import { describe, expect, it } from "vitest";
import { FailedPreconditionError } from "../../../server/core/errors.js";
import {
  assembleTrace,
  children,
  findRoot,
  orphanSpans,
  subtreePreorder,
  summarizeTrace,
} from "../../../server/core/tracing/assembly.js";
import { deepChain, ids, nowMs, span, spans, thrown, trace, wideTree, type SpanSpec } from "./builders.js";

describe("findRoot", () => {
  it.each<[string, SpanSpec[], string | undefined]>([
    ["the one span without a parent", [{ id: "b", parent: "r", start: 1, end: 2 }, { id: "r", start: 0, end: 3 }], "r"],
    ["none while every span has a parent", [{ id: "b", parent: "r", start: 1, end: 2 }], undefined],
    ["none of no spans", [], undefined],
    [
      "the earliest of several roots",
      [{ id: "a", start: 5, end: 6 }, { id: "z", start: 1, end: 9 }, { id: "m", start: 3, end: 4 }],
      "z",
    ],
    ["the smallest span_id among roots starting together", [{ id: "b", start: 1, end: 2 }, { id: "a", start: 1, end: 9 }], "a"],
  ])("is %s", (_, specs, expected) => {
    expect(findRoot(spans(...specs))?.spanId).toBe(expected);
  });
});

describe("children", () => {
  const all = spans(
    { id: "r", start: 0, end: 10 },
    { id: "c", parent: "r", start: 5, end: 6 },
    { id: "b", parent: "r", start: 2, end: 9 },
    { id: "a", parent: "r", start: 5, end: 7 },
    { id: "x", parent: "b", start: 3, end: 4 },
  );

  it.each<[string, string, string[]]>([
    ["orders a span's children by start time, then span_id", "r", ["b", "a", "c"]],
    ["lists only direct children", "b", ["x"]],
    ["is empty for a leaf", "x", []],
    ["is empty for an unknown parent", "nope", []],
  ])("%s", (_, parent, expected) => {
    expect(ids(children(all, parent))).toEqual(expected);
  });
});

describe("assembleTrace", () => {
  it("throws FailedPrecondition when the trace has no root yet", () => {
    const error = thrown(() => trace({ id: "a", parent: "r", start: 0, end: 1 }, { id: "b", parent: "a", start: 0, end: 1 }));
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect(error.message).toMatch(/^trace 4bf92f3577b34da6a3ce929d0e0e4736 has no root span yet: each of its 2 spans has a parent_span_id$/);
  });

  it("throws FailedPrecondition for no spans", () => {
    expect(thrown(() => assembleTrace([], nowMs))).toBeInstanceOf(FailedPreconditionError);
  });

  it("refuses spans of two traces (a caller bug)", () => {
    expect(() => trace({ id: "r", start: 0, end: 1 }, { id: "a", trace: "other", start: 0, end: 1 })).toThrow(
      /cannot be assembled together/,
    );
  });

  const t = trace(
    { id: "d", parent: "b", start: 30, end: 45, service: "db", status: "timeout" },
    { id: "r", start: 10, end: 100, service: "gateway" },
    { id: "b", parent: "r", start: 20, end: 60, service: "cart", status: "error" },
    { id: "o", parent: "missing", start: 5, end: 12, service: "cart", status: "cancelled" },
    { id: "l", parent: "r", start: 90, end: 130, service: "mail" },
  );

  it.each<[string, () => unknown, unknown]>([
    ["takes the trace id of its spans", () => t.traceId, "4bf92f3577b34da6a3ce929d0e0e4736"],
    ["finds the root", () => t.root.spanId, "r"],
    ["measures max(end) − min(start) over all spans, orphans and overruns included", () => t.totalDurationMs, 125],
    ["keeps the exact total in ns", () => t.totalDurationNs, 125_000_000n],
    ["counts distinct services", () => t.serviceCount, 4],
    ["counts ERROR and TIMEOUT spans as errors, not CANCELLED", () => t.errorCount, 2],
    ["counts spans", () => t.spanCount, 5],
    ["orders spans by start time", () => ids(t.spans), ["o", "r", "b", "d", "l"]],
    ["lists spans whose parent is absent as orphans", () => ids(t.orphans), ["o"]],
    ["indexes children by parent in start order", () => ids(t.childrenById.get("r") ?? []), ["b", "l"]],
    ["indexes spans by id", () => t.spanById.get("d")?.serviceName, "db"],
    ["stamps the injected time", () => t.assembledAtMs, nowMs],
  ])("%s", (_, actual, expected) => {
    expect(actual()).toEqual(expected);
  });

  it("keeps the first of repeated span ids", () => {
    const first = span({ id: "r", start: 0, end: 5, op: "first" });
    const t2 = assembleTrace([first, span({ id: "r", start: 0, end: 9, op: "second" })], nowMs);
    expect(t2.spans).toEqual([first]);
    expect(t2.totalDurationMs).toBe(5);
  });

  it("assembles with several roots, picking the earliest and keeping the others", () => {
    const t2 = trace({ id: "late", start: 5, end: 6 }, { id: "early", start: 1, end: 2 }, { id: "c", parent: "late", start: 5, end: 6 });
    expect(t2.root.spanId).toBe("early");
    expect(ids(t2.spans)).toEqual(["early", "c", "late"]);
    expect(t2.orphans).toEqual([]);
  });

  it("finds orphans among many spans, in start order", () => {
    const all = spans(
      { id: "r", start: 0, end: 9 },
      { id: "o2", parent: "gone", start: 3, end: 4 },
      { id: "o1", parent: "lost", start: 2, end: 4 },
      { id: "k", parent: "o1", start: 2, end: 3 },
    );
    expect(ids(orphanSpans(all))).toEqual(["o1", "o2"]);
    expect(ids(assembleTrace(all, nowMs).orphans)).toEqual(["o1", "o2"]);
  });
});

describe("summarizeTrace", () => {
  it("summarizes a trace without a root yet", () => {
    const summary = summarizeTrace(spans({ id: "a", parent: "r", start: 3, end: 8, status: "error" }, { id: "b", parent: "r", start: 1, end: 2 }));
    expect(summary).toEqual({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanCount: 2,
      totalDurationNs: 7_000_000n,
      totalDurationMs: 7,
      serviceCount: 1,
      errorCount: 1,
    });
  });

  it("floors a fractional total to whole milliseconds", () => {
    expect(summarizeTrace(spans({ id: "r", start: 0, end: 1.9999 })).totalDurationMs).toBe(1);
  });
});

describe("deep and wide trees", () => {
  it("assembles and walks a 10,000-deep chain without recursion", () => {
    const t = assembleTrace(deepChain(10_000), nowMs);
    expect(t.root.spanId).toBe("s0");
    expect(t.totalDurationMs).toBe(20_000);
    const order = subtreePreorder(t.root, t.childrenById);
    expect(order).toHaveLength(10_000);
    expect(order[9_999]?.spanId).toBe("s9999");
  });

  it("assembles a root with 5,000 children, ordered by start time", () => {
    const t = assembleTrace(wideTree(5000), nowMs);
    const kids = t.childrenById.get("root") ?? [];
    expect(kids).toHaveLength(5000);
    expect(kids[0]?.spanId).toBe("c00000");
    expect(kids[4999]?.spanId).toBe("c04999");
    expect(subtreePreorder(t.root, t.childrenById)).toHaveLength(5001);
  });

  it("walks a subtree in pre-order, children in start order", () => {
    const t = trace(
      { id: "r", start: 0, end: 10 },
      { id: "b", parent: "r", start: 5, end: 9 },
      { id: "a", parent: "r", start: 1, end: 4 },
      { id: "a2", parent: "a", start: 2, end: 3 },
      { id: "o", parent: "gone", start: 1, end: 2 },
    );
    expect(ids(subtreePreorder(t.root, t.childrenById))).toEqual(["r", "a", "a2", "b"]);
  });
});
