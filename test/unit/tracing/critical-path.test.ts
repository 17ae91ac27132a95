import { describe, expect, it } from "vitest";
import { assembleTrace } from "../../../server/core/tracing/assembly.js";
import { criticalPath, isBlockingKind, type CriticalPath } from "../../../server/core/tracing/critical-path.js";
import type { SpanKind } from "../../../server/core/tracing/model.js";
import { deepChain, nowMs, ns, t0Ns, trace, wideTree, type SpanSpec } from "./builders.js";

/** The path's sections as `id start-end` (ms after t0). */
function sections(path: CriticalPath): string[] {
  return path.segments.map(
    (segment) =>
      `${segment.span.spanId} ${Number(segment.startNs - t0Ns) / 1e6}-${Number(segment.endNs - t0Ns) / 1e6}`,
  );
}

const root: SpanSpec = { id: "r", start: 0, end: 10 };

describe("criticalPath", () => {
  it.each<[string, SpanSpec[], string[]]>([
    ["a lone span is all critical", [root], ["r 0-10"]],
    [
      "children one after another are all on it, the parent in the gaps",
      [root, { id: "a", parent: "r", start: 1, end: 4 }, { id: "b", parent: "r", start: 5, end: 9 }],
      ["r 0-1", "a 1-4", "r 4-5", "b 5-9", "r 9-10"],
    ],
    [
      "of overlapping children, the last to finish wins and the one it overlaps is off",
      [root, { id: "a", parent: "r", start: 1, end: 6 }, { id: "b", parent: "r", start: 4, end: 9 }],
      ["r 0-4", "b 4-9", "r 9-10"],
    ],
    [
      "a child inside a longer sibling is off the path",
      [root, { id: "a", parent: "r", start: 1, end: 8 }, { id: "b", parent: "r", start: 3, end: 6 }],
      ["r 0-1", "a 1-8", "r 8-10"],
    ],
    [
      "a child ending exactly where the next starts is off (strictly before the cursor)",
      [root, { id: "a", parent: "r", start: 0, end: 5 }, { id: "b", parent: "r", start: 5, end: 10 }],
      ["r 0-5", "b 5-10"],
    ],
    [
      "of children finishing together, the earlier start wins",
      [root, { id: "b", parent: "r", start: 3, end: 8 }, { id: "a", parent: "r", start: 1, end: 8 }],
      ["r 0-1", "a 1-8", "r 8-10"],
    ],
    [
      "of children finishing and starting together, the smaller span_id wins",
      [root, { id: "b", parent: "r", start: 2, end: 8 }, { id: "a", parent: "r", start: 2, end: 8 }],
      ["r 0-2", "a 2-8", "r 8-10"],
    ],
    [
      "the walk descends into grandchildren and comes back up",
      [root, { id: "a", parent: "r", start: 1, end: 9 }, { id: "g", parent: "a", start: 2, end: 5 }],
      ["r 0-1", "a 1-2", "g 2-5", "a 5-9", "r 9-10"],
    ],
    [
      "after a child, an earlier sibling finishing before that child's start is taken",
      [
        root,
        { id: "a", parent: "r", start: 1, end: 3 },
        { id: "b", parent: "r", start: 2, end: 4 },
        { id: "c", parent: "r", start: 5, end: 9 },
      ],
      ["r 0-2", "b 2-4", "r 4-5", "c 5-9", "r 9-10"],
    ],
    [
      "a PRODUCER child is not blocking and is ignored",
      [root, { id: "p", parent: "r", start: 2, end: 8, kind: "producer" }],
      ["r 0-10"],
    ],
    [
      "a CONSUMER child is not blocking and is ignored",
      [root, { id: "c", parent: "r", start: 2, end: 8, kind: "consumer" }],
      ["r 0-10"],
    ],
    [
      "the descendants of a non-blocking child are ignored too",
      [
        root,
        { id: "p", parent: "r", start: 2, end: 8, kind: "producer" },
        { id: "x", parent: "p", start: 3, end: 7, kind: "client" },
      ],
      ["r 0-10"],
    ],
    [
      "a blocking child beside an async one still counts",
      [
        root,
        { id: "p", parent: "r", start: 1, end: 9, kind: "producer" },
        { id: "a", parent: "r", start: 2, end: 5, kind: "client" },
      ],
      ["r 0-2", "a 2-5", "r 5-10"],
    ],
    [
      "a root of kind producer is kept",
      [{ ...root, kind: "producer" }, { id: "a", parent: "r", start: 2, end: 5, kind: "internal" }],
      ["r 0-2", "a 2-5", "r 5-10"],
    ],
    [
      "a child starting after the parent ends is dropped",
      [root, { id: "a", parent: "r", start: 12, end: 15 }],
      ["r 0-10"],
    ],
    [
      "a child starting exactly at the parent's end is dropped",
      [root, { id: "a", parent: "r", start: 10, end: 15 }],
      ["r 0-10"],
    ],
    [
      "a child ending before the parent starts is dropped",
      [root, { id: "a", parent: "r", start: -5, end: -1 }],
      ["r 0-10"],
    ],
    [
      "a child ending exactly at the parent's start is dropped",
      [root, { id: "a", parent: "r", start: -5, end: 0 }],
      ["r 0-10"],
    ],
    [
      "a child running past the parent's end is clipped to it",
      [root, { id: "a", parent: "r", start: 5, end: 15 }],
      ["r 0-5", "a 5-10"],
    ],
    [
      "a child starting before the parent is clipped to its start",
      [root, { id: "a", parent: "r", start: -2, end: 4 }],
      ["a 0-4", "r 4-10"],
    ],
    [
      "a child covering the whole parent takes all of it",
      [root, { id: "a", parent: "r", start: -2, end: 12 }],
      ["a 0-10"],
    ],
    [
      "a grandchild is clipped to its parent's clipped interval",
      [root, { id: "a", parent: "r", start: 5, end: 15 }, { id: "g", parent: "a", start: 8, end: 14 }],
      ["r 0-5", "a 5-8", "g 8-10"],
    ],
    [
      "a grandchild outside its parent's clipped interval is dropped",
      [root, { id: "a", parent: "r", start: 5, end: 15 }, { id: "g", parent: "a", start: 12, end: 14 }],
      ["r 0-5", "a 5-10"],
    ],
    [
      "a dropped child takes its descendants with it",
      [root, { id: "a", parent: "r", start: 12, end: 20 }, { id: "g", parent: "a", start: 5, end: 8 }],
      ["r 0-10"],
    ],
    [
      "orphans and other roots are not examined",
      [root, { id: "o", parent: "gone", start: 1, end: 30 }, { id: "z", start: 2, end: 40 }],
      ["r 0-10"],
    ],
    [
      "a zero-length child splits the parent's time but owns none of it",
      [root, { id: "a", parent: "r", start: 4, end: 4 }],
      ["r 0-4", "r 4-10"],
    ],
    ["a zero-length root has an empty path", [{ id: "r", start: 3, end: 3 }], []],
  ])("%s", (_, specs, expected) => {
    expect(sections(criticalPath(trace(...specs)))).toEqual(expected);
  });

  it("sums each span's sections, listing spans in order of first section", () => {
    const path = criticalPath(
      trace(root, { id: "a", parent: "r", start: 1, end: 4 }, { id: "b", parent: "r", start: 5, end: 9 }),
    );
    expect(path.spans.map((entry) => [entry.span.spanId, entry.criticalMs])).toEqual([
      ["r", 3],
      ["a", 3],
      ["b", 4],
    ]);
    expect(path.totalNs).toBe(ns(10));
  });

  it("reports critical time in ns exactly and in ms floored", () => {
    const path = criticalPath(trace({ id: "r", start: 0, end: 2.75 }, { id: "a", parent: "r", start: 1, end: 2 }));
    expect(path.segments.map((segment) => [segment.criticalNs, segment.criticalMs])).toEqual([
      [ns(1), 1],
      [ns(1), 1],
      [ns(0.75), 0],
    ]);
  });

  it("covers a 10,000-deep chain down and back up", () => {
    const path = criticalPath(assembleTrace(deepChain(10_000), nowMs));
    expect(path.segments).toHaveLength(2 * 10_000 - 1);
    expect(path.segments[0]?.span.spanId).toBe("s0");
    expect(path.segments[9_999]?.span.spanId).toBe("s9999");
    expect(path.totalNs).toBe(ns(20_000));
  });

  it("covers 5,000 children one after another", () => {
    const path = criticalPath(assembleTrace(wideTree(5000), nowMs));
    expect(path.segments).toHaveLength(2 * 5000 + 1);
    expect(path.spans).toHaveLength(5001);
    expect(path.segments[2 * 4999 + 1]?.span.spanId).toBe("c04999");
  });
});

describe("isBlockingKind", () => {
  it.each<[SpanKind, boolean]>([
    ["server", true],
    ["client", true],
    ["internal", true],
    ["producer", false],
    ["consumer", false],
  ])("%s blocks its parent: %s", (kind, expected) => {
    expect(isBlockingKind(kind)).toBe(expected);
  });
});
