import { describe, expect, it } from "vitest";
import { warmupFactor } from "../../../server/core/registry/health-score.js";
import {
  effectiveWeight,
  isRoutable,
  routedWeight,
  wholeRoutedWeight,
  type InstanceRecord,
  type RegistryChange,
  type RegistryLimits,
} from "../../../server/core/registry/model.js";
import type { RegistryState } from "../../../server/core/registry/registry-state.js";
import type { SelectionStrategy } from "../../../server/core/registry/selection.js";
import { commit, healthInput, ids, instanceInput, mulberry32, newState, reap, register, t0 } from "./builders.js";

const window = 10_000;
const warmup = 300_000;
/** No staleness unless a test asks for it: heartbeats are not the point here. */
const noStaleness: Partial<RegistryLimits> = { heartbeatTimeoutMs: 3_600_000, deregisterStaleAfterMs: 0 };

function scored(limits: Partial<RegistryLimits> = noStaleness, warmupMs = warmup): RegistryState {
  return newState(limits, mulberry32(3), { windowMs: window, latencyTargetMs: 250, warmupMs });
}

/** `kind:id` of each event, then `quiet:id` of each quiet record. */
function summary(change: RegistryChange): string[] {
  return [
    ...change.events.map((e) => `${e.kind}:${e.record.instance.instanceId}`),
    ...change.quiet.map((r) => `quiet:${r.instance.instanceId}`),
  ];
}

function health(state: RegistryState, id: string, nowMs: number, overrides: Parameters<typeof healthInput>[1]): RegistryChange {
  return commit(state, state.planHealthUpdate(healthInput(id, overrides), nowMs));
}

function heartbeat(state: RegistryState, id: string, nowMs: number, connections?: number): RegistryChange {
  return commit(state, state.planHeartbeat(id, connections, nowMs));
}

function pickIds(state: RegistryState, strategy: SelectionStrategy, count = 200): Set<string> {
  return new Set(Array.from({ length: count }, () => state.select({ serviceName: "checkout", strategy })?.instance.instanceId ?? "none"));
}

/**
 * `a` fails its check at t0 (score decays from 1 toward 0) and passes again
 * at t0 + 20 s, when its score is e^-2: still degraded. Its score then
 * climbs toward 1 and crosses 0.3 after 10 s × ln((1 − e^-2) / 0.7) ≈ 2.11 s.
 */
function recovering(limits?: Partial<RegistryLimits>, warmupMs?: number, weight = 50): RegistryState {
  const state = scored(limits, warmupMs);
  register(state, [instanceInput({ instanceId: "a", weight }), instanceInput({ instanceId: "b", weight: 10 })]);
  health(state, "a", t0, { healthy: false, consecutiveFailures: 1 });
  const back = health(state, "a", t0 + 20_000, { healthy: true, latencyMs: 5 });
  expect(summary(back)).toEqual(["updated:a"]);
  expect(state.get("a")).toMatchObject({ healthy: true, degraded: true });
  expect(state.get("a")!.score.value).toBeCloseTo(Math.exp(-2), 12);
  return state;
}
const recoveredAt = t0 + 22_200;

describe("degraded by score", () => {
  /**
   * `slow` (weight 100) answers its checks in 1000 ms against a 250 ms
   * target: signal 0.25, so its score falls toward 0.25 and crosses 0.3 after
   * 10 s × ln 15 ≈ 27.08 s. `busy` (weight 1) is fine but loaded.
   */
  function slowAndBusy(): RegistryState {
    const state = scored();
    register(state, [instanceInput({ instanceId: "slow", weight: 100 }), instanceInput({ instanceId: "busy", weight: 1 })]);
    expect(summary(health(state, "slow", t0, { healthy: true, latencyMs: 1000, consecutiveFailures: 0 }))).toEqual(["quiet:slow"]);
    heartbeat(state, "slow", t0 + 1, 0);
    heartbeat(state, "busy", t0 + 1, 500);
    return state;
  }

  it("stays routable, quietly, while the score is still at or above 0.3", () => {
    const state = slowAndBusy();
    for (let t = t0 + 1_000; t <= t0 + 27_000; t += 1_000) expect(summary(heartbeat(state, "slow", t, 0))).toEqual(["quiet:slow"]);
    expect(summary(reap(state, t0 + 27_000))).toEqual([]);
    expect(state.get("slow")!.degraded).toBe(false);
    expect(state.get("slow")!.score.value).toBeCloseTo(0.25 + 0.75 * Math.exp(-2.7), 12);
  });

  it("drops out of selection, healthy-only resolution and failover once below 0.3, whatever else it reports", () => {
    const state = slowAndBusy();
    const pass = reap(state, t0 + 27_100);
    expect(summary(pass)).toEqual(["updated:slow"]);
    const record = state.get("slow")!;
    expect(record).toMatchObject({ healthy: true, stale: false, degraded: true, activeConnections: 0 });
    expect(record.health?.consecutiveFailures).toBe(0);
    expect(record.score.value).toBeCloseTo(0.25 + 0.75 * Math.exp(-2.71), 12);
    expect(isRoutable(record)).toBe(false);
    expect(routedWeight(record)).toBe(0);
    expect(wholeRoutedWeight(record)).toBe(0);
    for (const strategy of ["weighted_random", "round_robin", "least_connections", "power_of_two_choices"] as const) {
      expect(pickIds(state, strategy)).toEqual(new Set(["busy"]));
    }
    expect(ids(state.resolve({ serviceName: "checkout", healthyOnly: true, minWeight: 0 }))).toEqual(["busy"]);
    expect(ids(state.resolve({ serviceName: "checkout", healthyOnly: false, minWeight: 0 }))).toEqual(["slow", "busy"]);
    expect(ids(state.failoverCandidates("checkout", []))).toEqual(["busy"]);
    expect(state.topology().get("checkout")!.get("eu-west")).toEqual({ instances: 2, healthy: 1 });
  });

  it("is found by a heartbeat as well, which then is the event and leaves the pass nothing to do", () => {
    const state = slowAndBusy();
    expect(summary(heartbeat(state, "slow", t0 + 27_100, 0))).toEqual(["updated:slow"]);
    expect(state.get("slow")!.degraded).toBe(true);
    expect(summary(reap(state, t0 + 27_200))).toEqual([]);
  });

  it("is announced once, not on every later pass", () => {
    const state = slowAndBusy();
    expect(summary(reap(state, t0 + 27_100))).toEqual(["updated:slow"]);
    for (let t = t0 + 28_000; t < t0 + 120_000; t += 1_000) expect(summary(reap(state, t))).toEqual([]);
  });

  it("comes from the latest check: a fast check makes the score climb back", () => {
    const state = slowAndBusy();
    reap(state, t0 + 27_100);
    expect(summary(health(state, "slow", t0 + 30_000, { healthy: true, latencyMs: 20 }))).toEqual(["quiet:slow"]);
    // From ≈0.286 toward 1: above 0.3 after 10 s × ln((1 − 0.2856) / 0.7) ≈ 0.2 s.
    expect(summary(reap(state, t0 + 30_100))).toEqual([]);
    expect(summary(reap(state, t0 + 30_300))).toEqual(["updated:slow"]);
    expect(isRoutable(state.get("slow")!)).toBe(true);
  });

  it("is quiet for an instance that is not routable anyway (a failing one)", () => {
    const state = scored();
    register(state, [instanceInput({ instanceId: "a" })]);
    expect(summary(health(state, "a", t0, { healthy: false, consecutiveFailures: 1 }))).toEqual(["updated:a"]);
    // e^(−t/10 s) < 0.3 after 12.04 s.
    expect(summary(reap(state, t0 + 12_000))).toEqual([]);
    expect(summary(reap(state, t0 + 12_100))).toEqual(["quiet:a"]);
    expect(state.get("a")!.degraded).toBe(true);
    expect(summary(reap(state, t0 + 13_000))).toEqual([]);
  });

  it("keeps plain heartbeats and health results that change no routing quiet, with the score written", () => {
    const state = scored();
    register(state, [instanceInput({ instanceId: "a" })]);
    for (let t = t0 + 100; t <= t0 + 10_000; t += 100) expect(summary(heartbeat(state, "a", t, 3))).toEqual(["quiet:a"]);
    for (const latencyMs of [5, 250, 400, 2_000, 30]) {
      expect(summary(health(state, "a", t0 + 10_000 + latencyMs, { healthy: true, latencyMs }))).toEqual(["quiet:a"]);
    }
    const { score } = state.get("a")!;
    expect(score.signal).toBe(1);
    expect(score.atMs).toBe(t0 + 12_000);
  });

  it("weighs time, not samples: many heartbeats leave the score where one would", () => {
    const few = scored();
    const many = scored();
    for (const state of [few, many]) {
      register(state, [instanceInput({ instanceId: "a" })]);
      health(state, "a", t0, { healthy: true, latencyMs: 500 });
    }
    for (let t = t0 + 50; t <= t0 + 15_000; t += 50) heartbeat(many, "a", t);
    heartbeat(few, "a", t0 + 15_000);
    expect(many.get("a")!.score.value).toBeCloseTo(few.get("a")!.score.value, 12);
    expect(few.get("a")!.score.value).toBeCloseTo(0.5 + 0.5 * Math.exp(-1.5), 12);
  });

  it("feeds health-check sweeps like single results", () => {
    const state = scored();
    register(state, [instanceInput({ instanceId: "a" }), instanceInput({ instanceId: "b" })]);
    health(state, "b", t0, { healthy: false, consecutiveFailures: 1 });
    const sweep = state.planSweep(
      [healthInput("a", { latencyMs: 1000 }), healthInput("b", { latencyMs: 5 })],
      3,
      t0 + 1_000,
    );
    expect(summary(commit(state, sweep.change))).toEqual(["updated:b", "quiet:a"]);
    expect(state.get("a")!.score.signal).toBe(0.25);
    expect(state.get("b")!.warmup).toEqual({ startedAtMs: t0 + 1_000, endsAtMs: t0 + 1_000 + warmup, step: 0 });
  });
});

describe("warm-up", () => {
  it("does not apply to a newly registered instance", () => {
    const state = scored();
    const [record] = register(state, [instanceInput({ instanceId: "a", weight: 50 })]);
    expect(record!.warmup).toBeUndefined();
    expect(effectiveWeight(record!)).toBe(50);
  });

  it("starts when a degraded instance's score climbs back over 0.3, at 10% of its weight", () => {
    const state = recovering();
    expect(summary(reap(state, t0 + 22_100))).toEqual([]);
    expect(summary(reap(state, recoveredAt))).toEqual(["updated:a"]);
    const record = state.get("a")!;
    expect(record).toMatchObject({ healthy: true, degraded: false });
    expect(record.warmup).toEqual({ startedAtMs: recoveredAt, endsAtMs: recoveredAt + warmup, step: 0 });
    expect(effectiveWeight(record)).toBe(5);
  });

  it("ramps up in ten steps, one updated event each, and ends at the full weight", () => {
    const state = recovering();
    reap(state, recoveredAt);
    const weights = [effectiveWeight(state.get("a")!)];
    for (let step = 1; step <= 10; step++) {
      expect(summary(reap(state, recoveredAt + step * 30_000 - 1))).toEqual([]);
      expect(summary(reap(state, recoveredAt + step * 30_000))).toEqual(["updated:a"]);
      weights.push(effectiveWeight(state.get("a")!));
    }
    expect(weights).toEqual(Array.from({ length: 11 }, (_, step) => 50 * warmupFactor(step)));
    expect(weights.slice(0, 3)).toEqual([5, 50 * 10 ** 0.1 * 0.1, 50 * 10 ** 0.2 * 0.1]);
    expect(state.get("a")!.warmup).toBeUndefined();
    expect(summary(reap(state, recoveredAt + 400_000))).toEqual([]);
  });

  it("is advanced by a heartbeat too, which then carries the event", () => {
    const state = recovering();
    reap(state, recoveredAt);
    expect(summary(heartbeat(state, "a", recoveredAt + 29_000))).toEqual(["quiet:a"]);
    expect(summary(heartbeat(state, "a", recoveredAt + 30_000))).toEqual(["updated:a"]);
    expect(state.get("a")!.warmup?.step).toBe(1);
    expect(summary(reap(state, recoveredAt + 30_001))).toEqual([]);
  });

  it("ramps a weight-1 instance from 0.1, unrounded, announcing every step and the end", () => {
    const state = recovering(noStaleness, warmup, 1);
    expect(summary(reap(state, recoveredAt))).toEqual(["updated:a"]);
    expect(effectiveWeight(state.get("a")!)).toBe(0.1);
    for (let step = 1; step < 10; step++) {
      expect(summary(reap(state, recoveredAt + step * 30_000))).toEqual(["updated:a"]);
      expect(effectiveWeight(state.get("a")!)).toBe(warmupFactor(step));
    }
    expect(state.get("a")!.warmup?.step).toBe(9);
    expect(summary(reap(state, recoveredAt + warmup))).toEqual(["updated:a"]);
    expect(state.get("a")!.warmup).toBeUndefined();
    expect(effectiveWeight(state.get("a")!)).toBe(1);
  });

  it.each([
    [1, 0, 1],
    [1, 9, 1],
    [4, 0, 1],
    [5, 0, 1],
    [5, 5, 2],
    [50, 1, 6],
    [50, 5, 16],
    [100, 0, 10],
    [100, 9, 79],
  ])("shows weight %d at step %d as the whole number %d (nearest, at least 1) where an int32 is needed", (weight, step, expected) => {
    const state = recovering(noStaleness, warmup, weight);
    reap(state, recoveredAt);
    reap(state, recoveredAt + step * 30_000);
    const record = state.get("a")!;
    expect(record.warmup?.step).toBe(step);
    expect(routedWeight(record)).toBe(weight * warmupFactor(step));
    expect(wholeRoutedWeight(record)).toBe(expected);
  });

  it("starts when an unhealthy instance passes its check again", () => {
    const state = scored();
    register(state, [instanceInput({ instanceId: "a", weight: 80 })]);
    health(state, "a", t0, { healthy: false, consecutiveFailures: 1 });
    expect(summary(health(state, "a", t0 + 1_000, { healthy: true }))).toEqual(["updated:a"]);
    expect(state.get("a")!.warmup).toEqual({ startedAtMs: t0 + 1_000, endsAtMs: t0 + 1_000 + warmup, step: 0 });
    expect(effectiveWeight(state.get("a")!)).toBe(8);
  });

  it("starts when a stale instance heartbeats again", () => {
    const state = scored({ heartbeatTimeoutMs: 30_000, deregisterStaleAfterMs: 0 });
    register(state, [instanceInput({ instanceId: "a", weight: 30 })]);
    expect(summary(reap(state, t0 + 30_001))).toEqual(["updated:a"]);
    expect(summary(heartbeat(state, "a", t0 + 31_000))).toEqual(["updated:a"]);
    expect(state.get("a")!.warmup).toMatchObject({ startedAtMs: t0 + 31_000, step: 0 });
    expect(effectiveWeight(state.get("a")!)).toBe(3);
  });

  it("waits, after a long silence, until the score has recovered from staleness", () => {
    const state = scored({ heartbeatTimeoutMs: 30_000, deregisterStaleAfterMs: 0 });
    register(state, [instanceInput({ instanceId: "a" })]);
    reap(state, t0 + 30_001);
    expect(summary(reap(state, t0 + 42_100))).toEqual(["quiet:a"]);
    // Silent for 30 s after turning stale: the score is e^-3 when it returns.
    expect(summary(heartbeat(state, "a", t0 + 60_001))).toEqual(["updated:a"]);
    expect(state.get("a")).toMatchObject({ stale: false, degraded: true });
    expect(state.get("a")!.warmup).toBeUndefined();
    // 1 − (1 − e^-3)·e^(−t/10 s) reaches 0.3 after ≈ 3.06 s.
    expect(summary(reap(state, t0 + 63_000))).toEqual([]);
    expect(summary(reap(state, t0 + 63_100))).toEqual(["updated:a"]);
    expect(state.get("a")!.warmup).toMatchObject({ startedAtMs: t0 + 63_100, step: 0 });
  });

  it("is cancelled when the instance leaves routing, and starts over at 10% when it returns", () => {
    const state = recovering();
    reap(state, recoveredAt);
    reap(state, recoveredAt + 90_000);
    expect(state.get("a")!.warmup?.step).toBe(3);
    expect(summary(health(state, "a", recoveredAt + 91_000, { healthy: false }))).toEqual(["updated:a"]);
    expect(state.get("a")!.warmup).toBeUndefined();
    expect(summary(health(state, "a", recoveredAt + 92_000, { healthy: true }))).toEqual(["updated:a"]);
    expect(state.get("a")!.warmup).toEqual({ startedAtMs: recoveredAt + 92_000, endsAtMs: recoveredAt + 92_000 + warmup, step: 0 });
    expect(effectiveWeight(state.get("a")!)).toBe(5);
  });

  it("does not happen with warm-up off: the full weight at once", () => {
    const state = recovering(noStaleness, 0);
    expect(summary(reap(state, recoveredAt))).toEqual(["updated:a"]);
    expect(state.get("a")!.warmup).toBeUndefined();
    expect(effectiveWeight(state.get("a")!)).toBe(50);
  });

  it("survives load with the same effective weight", () => {
    const state = recovering();
    reap(state, recoveredAt);
    reap(state, recoveredAt + 160_000);
    const records = state.records();
    const restored = scored();
    restored.load(records, false, recoveredAt + 160_000);
    const a = restored.get("a")!;
    expect(a.warmup?.step).toBe(5);
    expect(effectiveWeight(a)).toBe(50 * warmupFactor(5));
    expect(summary(reap(restored, recoveredAt + 180_000))).toEqual(["updated:a"]);
    expect(effectiveWeight(restored.get("a")!)).toBe(50 * warmupFactor(6));
  });
});

describe("re-evaluated records", () => {
  it("freeze their score and warm-up like the rest of the record", () => {
    const state = recovering();
    reap(state, recoveredAt + 30_000);
    const record = state.get("a")!;
    expect(Object.isFrozen(record)).toBe(true);
    expect(Object.isFrozen(record.score)).toBe(true);
    expect(Object.isFrozen(record.warmup)).toBe(true);
    expect(Object.isFrozen(record.health)).toBe(true);
  });
});

describe("staleness passes", () => {
  it("write nothing for instances that time did not change", () => {
    const state = scored();
    register(state, ["a", "b", "c"].map((instanceId) => instanceInput({ instanceId })));
    health(state, "b", t0, { latencyMs: 100 });
    const before: InstanceRecord[] = state.records();
    for (let t = t0 + 1_000; t <= t0 + 600_000; t += 1_000) {
      const change = state.planReap(t).change;
      expect(change.events).toEqual([]);
      expect(change.quiet).toEqual([]);
    }
    state.records().forEach((record, i) => expect(record).toBe(before[i]));
  });
});
