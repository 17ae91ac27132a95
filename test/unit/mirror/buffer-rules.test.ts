import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import {
  emptyMirrorStats,
  planEnqueue,
  resolveDispatchBatchSize,
  resolveDrainLimit,
  statsAfterEnqueue,
  statsAfterRemoval,
  statsAfterResults,
  type EnqueuePlan,
  type MirrorStats,
} from "../../../server/core/mirror/buffer-rules.js";
import { defaultMirrorLimits } from "../../../server/core/mirror/model.js";
import { mirrorResult, thrown } from "./builders.js";

describe("planEnqueue", () => {
  it.each<[string, number, number, number, EnqueuePlan]>([
    ["an empty buffer takes one", 0, 3, 1, { accepted: 1, dropped: 0 }],
    ["the last free slot is taken", 2, 3, 1, { accepted: 1, dropped: 0 }],
    ["a full buffer drops the newcomer", 3, 3, 1, { accepted: 0, dropped: 1 }],
    ["a batch fills what is free and drops the rest", 1, 3, 5, { accepted: 2, dropped: 3 }],
    ["a batch into an empty buffer of size 1", 0, 1, 4, { accepted: 1, dropped: 3 }],
    ["an over-full buffer (shrunk) accepts nothing", 5, 3, 2, { accepted: 0, dropped: 2 }],
    ["an empty batch is a no-op", 0, 3, 0, { accepted: 0, dropped: 0 }],
  ])("%s", (_, pending, size, count, plan) => {
    expect(planEnqueue(pending, size, count)).toEqual(plan);
  });
});

describe("mirror stats", () => {
  it("counts overflow: 1500 captures into a buffer of 1000 keep 1000 and drop 500", () => {
    let stats: MirrorStats = emptyMirrorStats;
    for (let i = 0; i < 1500; i++) stats = statsAfterEnqueue(stats, planEnqueue(stats.pending, 1000));
    expect(stats).toEqual({ captured: 1000, dropped: 500, pending: 1000, dispatched: 0, failed: 0, diffs: 0 });
  });

  it("frees room on drain, so later captures are accepted again", () => {
    let stats = statsAfterEnqueue(emptyMirrorStats, planEnqueue(0, 2, 3));
    stats = statsAfterRemoval(stats, 1);
    stats = statsAfterEnqueue(stats, planEnqueue(stats.pending, 2, 2));
    expect(stats).toEqual({ captured: 3, dropped: 2, pending: 2, dispatched: 0, failed: 0, diffs: 0 });
    expect(stats.captured - 1).toBe(stats.pending);
  });

  it("never lets pending go below zero", () => {
    expect(statsAfterRemoval({ ...emptyMirrorStats, pending: 2 }, 5).pending).toBe(0);
  });

  it("counts results as dispatched, failed and diffs", () => {
    const stats = statsAfterResults({ ...emptyMirrorStats, captured: 4 }, [
      mirrorResult(),
      mirrorResult({ success: false, errorKind: "timeout", compared: false }),
      mirrorResult({ diffDetected: true }),
      mirrorResult({ success: false, errorKind: "http_status", responseCode: 500, compared: false }),
    ]);
    expect(stats).toEqual({ captured: 4, dropped: 0, pending: 0, dispatched: 4, failed: 2, diffs: 1 });
  });
});

describe("drain limits and dispatch batch sizes", () => {
  const limits = defaultMirrorLimits();

  it.each<[number | undefined, number, number]>([
    [undefined, 100, 50],
    [0, 100, 50],
    [1, 1, 1],
    [10_000, 10_000, 10_000],
  ])("%s takes %s (drain) and %s (dispatch)", (value, drain, dispatch) => {
    expect(resolveDrainLimit(value, limits)).toBe(drain);
    expect(resolveDispatchBatchSize(value, limits)).toBe(dispatch);
  });

  it.each([-1, 10_001, 2.5])("rejects %s", (value) => {
    const error = thrown(() => resolveDrainLimit(value, limits));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as Error).message).toBe(`limit must be an integer in 1..10000 (0 for 100), got ${value}`);
    expect((thrown(() => resolveDispatchBatchSize(value, limits)) as Error).message).toBe(
      `batch_size must be an integer in 1..10000 (0 for 50), got ${value}`,
    );
  });
});
