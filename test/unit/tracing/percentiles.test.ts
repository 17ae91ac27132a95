import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import { nearestRank, percentiles } from "../../../server/core/tracing/percentiles.js";
import { thrown } from "./builders.js";

const oneToHundred = Array.from({ length: 100 }, (_, i) => i + 1);

/** `values`' percentiles as a `{p: value}` object. */
function table(values: readonly number[], requested?: readonly number[]): Record<number, number> {
  return Object.fromEntries(percentiles(values, requested).map(({ percentile, value }) => [percentile, value]));
}

describe("nearest-rank percentiles against known distributions", () => {
  it("1..100 gives p50 = 50, p90 = 90, p95 = 95, p99 = 99 by default", () => {
    expect(table(oneToHundred)).toEqual({ 50: 50, 90: 90, 95: 95, 99: 99 });
  });

  it.each<[string, number[], number[], Record<number, number>]>([
    ["1..100 at the edges", oneToHundred, [1, 100], { 1: 1, 100: 100 }],
    ["1..100 where p × N / 100 is inexact in floating point", oneToHundred, [7, 29, 57], { 7: 7, 29: 29, 57: 57 }],
    ["1..100 given shuffled", [...oneToHundred].sort((a, b) => ((a * 37) % 101) - ((b * 37) % 101)), [50, 90], { 50: 50, 90: 90 }],
    ["a single value is every percentile", [42], [1, 50, 99, 100], { 1: 42, 50: 42, 99: 42, 100: 42 }],
    ["two values: p50 is the lower, above it the upper", [20, 10], [50, 50.1, 90], { 50: 10, 50.1: 20, 90: 20 }],
    ["three values", [3, 1, 2], [33, 34, 66, 67, 100], { 33: 1, 34: 2, 66: 2, 67: 3, 100: 3 }],
    ["four values", [10, 20, 30, 40], [25, 26, 50, 75, 76], { 25: 10, 26: 20, 50: 20, 75: 30, 76: 40 }],
    ["five values", [5, 1, 4, 2, 3], [20, 40, 60, 80, 99], { 20: 1, 40: 2, 60: 3, 80: 4, 99: 5 }],
    ["repeated values", [7, 7, 7, 1], [25, 26, 100], { 25: 1, 26: 7, 100: 7 }],
    ["a fractional percentile: 99.9 of 1..1000 is 999", Array.from({ length: 1000 }, (_, i) => i + 1), [99.9], { 99.9: 999 }],
    ["fractional durations are ranked as they are", [0.5, 0.25, 0.75], [50], { 50: 0.5 }],
  ])("%s", (_, values, requested, expected) => {
    expect(table(values, requested)).toEqual(expected);
  });

  it("answers in request order, one entry per request", () => {
    expect(percentiles([1, 2, 3], [99, 1]).map((entry) => entry.percentile)).toEqual([99, 1]);
  });

  it("has no entries without values", () => {
    expect(percentiles([])).toEqual([]);
  });

  it("does not reorder its input", () => {
    const values = [3, 1, 2];
    percentiles(values);
    expect(values).toEqual([3, 1, 2]);
  });
});

describe("nearestRank", () => {
  it.each<[number, number, number]>([
    [50, 100, 50],
    [50, 101, 51],
    [1, 1, 1],
    [100, 7, 7],
    [0.0001, 10, 1],
  ])("p%s of %s values is rank %s", (p, count, rank) => {
    expect(nearestRank(p, count)).toBe(rank);
  });
});

describe("percentile validation", () => {
  it.each<[number[], string, string]>([
    [[0], "percentiles[0]", "must be > 0 and <= 100, got 0"],
    [[50, -1], "percentiles[1]", "must be > 0 and <= 100, got -1"],
    [[101], "percentiles[0]", "must be > 0 and <= 100, got 101"],
    [[Number.NaN], "percentiles[0]", "must be > 0 and <= 100, got NaN"],
    [[Number.POSITIVE_INFINITY], "percentiles[0]", "must be > 0 and <= 100, got Infinity"],
  ])("rejects %j naming %s", (requested, field, reason) => {
    const error = thrown(() => percentiles([1, 2, 3], requested));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).field).toBe(field);
    expect((error as InvalidFieldError).reason).toBe(reason);
  });

  it("rejects a bad percentile even without values", () => {
    expect(() => percentiles([], [0])).toThrow(InvalidFieldError);
  });
});
