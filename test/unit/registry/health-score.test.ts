import { describe, expect, it } from "vitest";
import {
  advanceWarmup,
  defaultHealthScoring,
  degradedScoreThreshold,
  healthSignal,
  initialScore,
  isDegradedScore,
  observeScore,
  scoreAt,
  startWarmup,
  warmupFactor,
  warmupStepAt,
  warmupSteps,
  type HealthScore,
} from "../../../server/core/registry/health-score.js";
import { t0 } from "./builders.js";

const window = 10_000;

describe("defaultHealthScoring", () => {
  it("defaults to a 10 s window, a 250 ms latency target and a 5 min warm-up", () => {
    expect(defaultHealthScoring()).toEqual({ windowMs: 10_000, latencyTargetMs: 250, warmupMs: 300_000 });
  });

  it("keeps what the overrides set, including a warm-up of 0", () => {
    expect(defaultHealthScoring({ windowMs: 200, warmupMs: 0 })).toEqual({ windowMs: 200, latencyTargetMs: 250, warmupMs: 0 });
  });
});

describe("healthSignal", () => {
  it.each([
    ["no check yet", undefined, false, 250, 1],
    ["no check yet, stale", undefined, true, 250, 0],
    ["healthy, well under target", { healthy: true, latencyMs: 5 }, false, 250, 1],
    ["healthy, at target", { healthy: true, latencyMs: 250 }, false, 250, 1],
    ["healthy, twice the target", { healthy: true, latencyMs: 500 }, false, 250, 0.5],
    ["healthy, four times the target", { healthy: true, latencyMs: 1000 }, false, 250, 0.25],
    ["healthy, 0 ms (counted as 1 ms)", { healthy: true, latencyMs: 0 }, false, 250, 1],
    ["healthy, 400 ms against a 100 ms target", { healthy: true, latencyMs: 400 }, false, 100, 0.25],
    ["unhealthy, fast", { healthy: false, latencyMs: 1 }, false, 250, 0],
    ["healthy but stale", { healthy: true, latencyMs: 5 }, true, 250, 0],
  ])("%s gives %#", (_, check, stale, target, expected) => {
    expect(healthSignal(check, stale, target)).toBe(expected);
  });
});

describe("the EWMA score", () => {
  const dropped: HealthScore = { value: 1, signal: 0, atMs: t0 };

  it.each([
    [0, 1],
    [1_000, Math.exp(-0.1)],
    [window, Math.exp(-1)],
    [2 * window, Math.exp(-2)],
    [5_000, Math.exp(-0.5)],
  ])("decays from 1 toward signal 0 as exp(−t/τ): after %d ms it is %d", (elapsedMs, expected) => {
    expect(scoreAt(dropped, t0 + elapsedMs, window)).toBeCloseTo(expected, 12);
  });

  it("after one window has moved 63.2% of the way to a new signal, after three 95.0%", () => {
    const score: HealthScore = { value: 0.2, signal: 1, atMs: t0 };
    expect(scoreAt(score, t0 + window, window)).toBeCloseTo(0.2 + 0.8 * (1 - Math.exp(-1)), 12);
    expect(scoreAt(score, t0 + window, window)).toBeCloseTo(0.705_696_447_1, 9);
    expect((scoreAt(score, t0 + 3 * window, window) - 0.2) / 0.8).toBeCloseTo(0.950_212_931_6, 9);
  });

  it("does not move while the signal equals the score, nor before its anchor (clock moved back)", () => {
    expect(scoreAt({ value: 0.4, signal: 0.4, atMs: t0 }, t0 + 1e9, window)).toBe(0.4);
    expect(scoreAt(dropped, t0 - 5_000, window)).toBe(1);
  });

  it("starts new instances at score 1 with signal 1", () => {
    expect(initialScore(t0)).toEqual({ value: 1, signal: 1, atMs: t0 });
  });

  it("advances with the old signal before storing the new one", () => {
    const observed = observeScore(dropped, 0.75, t0 + window, window);
    expect(observed.value).toBeCloseTo(Math.exp(-1), 12);
    expect(observed.signal).toBe(0.75);
    expect(observed.atMs).toBe(t0 + window);
    // From there on it heads for 0.75: s = 0.75 + (e^-1 − 0.75)·e^-1 one window later.
    expect(scoreAt(observed, t0 + 2 * window, window)).toBeCloseTo(0.75 + (Math.exp(-1) - 0.75) * Math.exp(-1), 12);
  });

  it("never moves its anchor backwards", () => {
    expect(observeScore(dropped, 1, t0 - 1_000, window)).toEqual({ value: 1, signal: 1, atMs: t0 });
  });

  it("is rate-independent: re-observing the same signal every 100 ms ends where one observation does", () => {
    const once = scoreAt(observeScore(initialScore(t0), 0.25, t0, window), t0 + 30_000, window);
    let often = observeScore(initialScore(t0), 0.25, t0, window);
    for (let t = t0 + 100; t <= t0 + 30_000; t += 100) often = observeScore(often, often.signal, t, window);
    expect(often.value).toBeCloseTo(once, 12);
    expect(once).toBeCloseTo(0.25 + 0.75 * Math.exp(-3), 12);
  });
});

describe("degraded cut-off", () => {
  it.each([
    [0, true],
    [0.299_999, true],
    [degradedScoreThreshold, false],
    [0.300_001, false],
    [1, false],
  ])("score %d is degraded: %s", (score, degraded) => {
    expect(isDegradedScore(score)).toBe(degraded);
  });

  it("is 0.3", () => {
    expect(degradedScoreThreshold).toBe(0.3);
  });
});

describe("warm-up ramp", () => {
  it.each([
    [0, 0.1],
    [1, 0.125_892_541_179],
    [2, 0.158_489_319_246],
    [3, 0.199_526_231_497],
    [4, 0.251_188_643_151],
    [5, 0.316_227_766_017],
    [6, 0.398_107_170_553],
    [7, 0.501_187_233_627],
    [8, 0.630_957_344_48],
    [9, 0.794_328_234_724],
    [10, 1],
    [11, 1],
  ])("step %d scales the weight by 0.1 × 10^(step/10) = %d", (step, factor) => {
    expect(warmupFactor(step)).toBeCloseTo(factor, 11);
  });

  it("has 10 steps, each ×10^(1/10) of the one before", () => {
    expect(warmupSteps).toBe(10);
    for (let step = 1; step < warmupSteps; step++) {
      expect(warmupFactor(step) / warmupFactor(step - 1)).toBeCloseTo(10 ** 0.1, 12);
    }
  });

  it.each([
    [-1, 0],
    [0, 0],
    [29_999, 0],
    [30_000, 1],
    [150_000, 5],
    [269_999, 8],
    [270_000, 9],
    [299_999, 9],
    [300_000, 10],
    [900_000, 10],
  ])("at %d ms into a 300 s warm-up is at step %d", (elapsedMs, step) => {
    const warmup = startWarmup(t0, 300_000)!;
    expect(warmupStepAt(warmup, t0 + elapsedMs)).toBe(step);
  });

  it("starts at step 0 with its end fixed, or not at all when warm-up is off", () => {
    expect(startWarmup(t0, 300_000)).toEqual({ startedAtMs: t0, endsAtMs: t0 + 300_000, step: 0 });
    expect(startWarmup(t0, 0)).toBeUndefined();
  });

  it("advances to the same object within a step, a new one past it, and ends at the last", () => {
    const warmup = startWarmup(t0, 300_000)!;
    expect(advanceWarmup(warmup, t0 + 29_999)).toBe(warmup);
    expect(advanceWarmup(warmup, t0 + 65_000)).toEqual({ ...warmup, step: 2 });
    expect(advanceWarmup(warmup, t0 + 300_000)).toBeUndefined();
  });

  it("never steps back when the clock does", () => {
    const later = advanceWarmup(startWarmup(t0, 300_000)!, t0 + 100_000)!;
    expect(later.step).toBe(3);
    expect(advanceWarmup(later, t0 + 1_000)).toBe(later);
  });
});
