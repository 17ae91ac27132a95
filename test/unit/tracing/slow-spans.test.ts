import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import { slowSpans, type SlowSpan } from "../../../server/core/tracing/slow-spans.js";
import { thrown, trace } from "./builders.js";

const t = trace(
  { id: "r", start: 0, end: 100 },
  { id: "a", parent: "r", start: 10, end: 60 },
  { id: "b", parent: "r", start: 20, end: 50 },
  { id: "c", parent: "r", start: 65, end: 90 },
  { id: "g", parent: "a", start: 15, end: 35 },
  { id: "o", parent: "gone", start: 0, end: 40 },
);

function pick(list: SlowSpan[], ...fields: (keyof SlowSpan)[]): unknown[][] {
  return list.map((entry) => [entry.span.spanId, ...fields.map((field) => entry[field])]);
}

describe("slowSpans", () => {
  it("lists spans over the threshold, longest first, with duration and trace share", () => {
    expect(pick(slowSpans(t, 30), "durationMs", "traceShare")).toEqual([
      ["r", 100, 1],
      ["a", 50, 0.5],
      ["o", 40, 0.4],
    ]);
  });

  it.each<[string, number, string[]]>([
    ["a span exactly at the threshold is not slow", 50, ["r"]],
    ["a threshold of 0 takes every span with a duration", 0, ["r", "a", "o", "b", "c", "g"]],
    ["a threshold between durations cuts there", 25, ["r", "a", "o", "b"]],
    ["a threshold above every span gives none", 100, []],
  ])("%s", (_, threshold, expected) => {
    expect(slowSpans(t, threshold).map((entry) => entry.span.spanId)).toEqual(expected);
  });

  it("gives each span's self time (children's union subtracted)", () => {
    // r: children a ∪ b ∪ c = [10, 60] ∪ [65, 90] → 100 − 75; a: g = 20 → 30
    expect(pick(slowSpans(t, 45), "selfMs")).toEqual([
      ["r", 25],
      ["a", 30],
    ]);
  });

  it("marks whether each span is on the critical path", () => {
    // path: r 0-10, a 10-15, g 15-35, a 35-60, r 60-65, c 65-90, r 90-100;
    // b overlaps a and is off; o is an orphan
    expect(pick(slowSpans(t, 0), "onCriticalPath")).toEqual([
      ["r", true],
      ["a", true],
      ["o", false],
      ["b", false],
      ["c", true],
      ["g", true],
    ]);
  });

  it("orders equal durations by start time, then span_id", () => {
    const tied = trace(
      { id: "r", start: 0, end: 100 },
      { id: "y", parent: "r", start: 50, end: 60 },
      { id: "x", parent: "r", start: 50, end: 60 },
      { id: "w", parent: "r", start: 10, end: 20 },
    );
    expect(slowSpans(tied, 5).map((entry) => entry.span.spanId)).toEqual(["r", "w", "x", "y"]);
  });

  it("returns at most limit spans", () => {
    expect(slowSpans(t, 0, 2).map((entry) => entry.span.spanId)).toEqual(["r", "a"]);
  });

  it.each<[string, number, number, string]>([
    ["a negative threshold", -1, 50, "threshold_ms"],
    ["a NaN threshold", Number.NaN, 50, "threshold_ms"],
    ["a limit of 0", 10, 0, "limit"],
    ["a fractional limit", 10, 1.5, "limit"],
  ])("rejects %s", (_, threshold, limit, field) => {
    const error = thrown(() => slowSpans(t, threshold, limit));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).field).toBe(field);
  });
});
