import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import {
  classifyField,
  defaultNoiseThresholds,
  resolveNoiseThresholds,
  type FieldVerdict,
} from "../../../server/core/mirror/noise.js";
import { thrown } from "./builders.js";

describe("classifyField", () => {
  it.each<[string, number, number, number, FieldVerdict]>([
    ["candidate diffs with no noise", 50, 0, 1000, "reported"],
    ["no diffs at all", 0, 0, 1000, "insignificant"],
    ["noise equal to candidate diffs", 50, 50, 1000, "noise"],
    ["noise above candidate diffs", 30, 60, 1000, "noise"],
    ["only noise", 0, 40, 1000, "noise"],
    ["relative just above 20%: 61 vs 40 (20.8%)", 61, 40, 1000, "reported"],
    ["relative exactly 20%: 60 vs 40 is not enough", 60, 40, 1000, "noise"],
    ["relative below 20%: 55 vs 45", 55, 45, 1000, "noise"],
    ["absolute exactly 0.03%: 3 of 10000 is not enough", 3, 0, 10_000, "insignificant"],
    ["absolute just above 0.03%: 4 of 10000", 4, 0, 10_000, "reported"],
    ["one diff in 1000 requests is 0.1%", 1, 0, 1000, "reported"],
    ["one diff in 100000 requests is 0.001%", 1, 0, 100_000, "insignificant"],
    ["a big gap that is rare in absolute terms", 5, 1, 100_000, "noise"],
    ["no requests", 0, 0, 0, "insignificant"],
  ])("%s → %s", (_, candidateDiffs, noiseDiffs, requests, verdict) => {
    expect(classifyField({ candidateDiffs, noiseDiffs }, requests).verdict).toBe(verdict);
  });

  it("computes Diffy's relative and absolute differences as fractions", () => {
    expect(classifyField({ candidateDiffs: 30, noiseDiffs: 10 }, 200)).toEqual({
      relativeDifference: 0.5,
      absoluteDifference: 0.1,
      verdict: "reported",
    });
  });

  it.each<[string, { relative: number; absolute: number }, FieldVerdict]>([
    ["a stricter relative threshold cancels it", { relative: 0.6, absolute: 0.0003 }, "noise"],
    ["a stricter absolute threshold cancels it", { relative: 0.2, absolute: 0.2 }, "noise"],
    ["looser thresholds keep it", { relative: 0, absolute: 0 }, "reported"],
  ])("%s", (_, thresholds, verdict) => {
    expect(classifyField({ candidateDiffs: 30, noiseDiffs: 10 }, 200, thresholds).verdict).toBe(verdict);
  });
});

describe("resolveNoiseThresholds", () => {
  it("defaults to Diffy's 20% and 0.03%", () => {
    expect(resolveNoiseThresholds()).toEqual({ relative: 0.2, absolute: 0.0003 });
    expect(resolveNoiseThresholds({ absolute: 0.01 })).toEqual({ ...defaultNoiseThresholds, absolute: 0.01 });
  });

  it.each<[{ relative?: number; absolute?: number }, string]>([
    [{ relative: 1.2 }, "noise_relative must be in [0, 1], got 1.2"],
    [{ absolute: -1 }, "noise_absolute must be in [0, 1], got -1"],
  ])("rejects %j", (input, message) => {
    const error = thrown(() => resolveNoiseThresholds(input));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as Error).message).toBe(message);
  });
});
