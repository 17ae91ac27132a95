import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import { dueCount, replayOffsets, resolveRateMultiplier } from "../../../server/core/mirror/replay.js";
import { nowMs, thrown } from "./builders.js";

const at = (...offsets: number[]): number[] => offsets.map((offset) => nowMs + offset);

describe("replayOffsets", () => {
  it.each<[string, number[], number, { maxWaitMs?: number }, number[]]>([
    ["real time keeps the gaps", at(0, 100, 250), 1, {}, [0, 100, 250]],
    ["2x halves them", at(0, 100, 250), 2, {}, [0, 50, 125]],
    ["0.5x doubles them", at(0, 100, 250), 0.5, {}, [0, 200, 500]],
    ["the first request starts at once, whatever its timestamp", at(5000), 1, {}, [0]],
    ["no requests, no offsets", [], 1, {}, []],
    ["a clock step back adds no wait and keeps the order", at(0, 100, 40, 140), 1, {}, [0, 100, 100, 200]],
    ["long idle gaps are cut to maxWaitMs", at(0, 10, 3_600_010, 3_600_020), 1, { maxWaitMs: 1000 }, [0, 10, 1010, 1020]],
    ["maxWaitMs applies after scaling", at(0, 4000), 2, { maxWaitMs: 3000 }, [0, 2000]],
    ["rounding does not accumulate", at(0, 1, 2, 3), 3, {}, [0, 0, 1, 1]],
    ["an unset multiplier sends everything at once", at(0, 100, 250), Number.POSITIVE_INFINITY, {}, [0, 0, 0]],
  ])("%s", (_, captured, multiplier, options, offsets) => {
    expect(replayOffsets(captured, multiplier, options)).toEqual(offsets);
  });
});

describe("dueCount", () => {
  it.each<[number, number]>([
    [-1, 0],
    [0, 2],
    [99, 2],
    [100, 3],
    [1000, 4],
  ])("at %s ms, %s requests are due", (elapsed, due) => {
    expect(dueCount([0, 0, 100, 250], elapsed)).toBe(due);
  });
});

describe("resolveRateMultiplier", () => {
  it.each<[number | undefined, number]>([
    [undefined, Number.POSITIVE_INFINITY],
    [0, Number.POSITIVE_INFINITY],
    [2.5, 2.5],
    [1000, 1000],
  ])("%s → %s", (input, expected) => {
    expect(resolveRateMultiplier(input)).toBe(expected);
  });

  it.each([-1, 1001, Number.NaN])("rejects %s", (input) => {
    const error = thrown(() => resolveRateMultiplier(input));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as Error).message).toBe(`rate_multiplier must be in (0, 1000], got ${input}`);
  });
});
