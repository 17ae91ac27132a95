import { describe, expect, it } from "vitest";
import { InvalidFieldError, NotFoundError } from "../../../server/core/errors.js";
import type { RegistryState } from "../../../server/core/registry/registry-state.js";
import { commit, healthInput, ids, instanceInput, newState, reap, register, reportHealth, t0, thrown } from "./builders.js";

function withInstances(...instanceIds: string[]): RegistryState {
  const state = newState();
  register(state, instanceIds.map((instanceId) => instanceInput({ instanceId })));
  return state;
}

describe("health update", () => {
  it("rejects an unknown instance with NotFoundError naming it", () => {
    const error = thrown(() => newState().planHealthUpdate(healthInput("ghost"), t0));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message).toContain('"ghost"');
  });

  it("records the result as the instance's health, stamped now", () => {
    const state = withInstances("a");
    reportHealth(state, healthInput("a", { healthy: false, latencyMs: 250, consecutiveFailures: 2, reason: "timeout" }), t0 + 7);
    expect(state.get("a")!.health).toEqual({
      instanceId: "a",
      healthy: false,
      latencyMs: 250,
      consecutiveFailures: 2,
      lastCheckMs: t0 + 7,
      reason: "timeout",
    });
    expect(state.get("a")!.healthy).toBe(false);
  });

  it.each([
    ["healthy to unhealthy", true, false, "event"],
    ["unhealthy to healthy", false, true, "event"],
    ["healthy to healthy", true, true, "quiet"],
    ["unhealthy to unhealthy", false, false, "quiet"],
  ])("%s is an updated event only when the flag flips (%s → %s: %s)", (_, before, after, outcome) => {
    const state = withInstances("a");
    if (!before) reportHealth(state, healthInput("a", { healthy: false, consecutiveFailures: 1 }));
    const change = state.planHealthUpdate(healthInput("a", { healthy: after, latencyMs: 42 }), t0 + 1);
    if (outcome === "event") {
      expect(change.quiet).toEqual([]);
      expect(change.events.map((e) => [e.kind, e.record.healthy])).toEqual([["updated", after]]);
    } else {
      expect(change.events).toEqual([]);
      expect(change.quiet.map((r) => [r.healthy, r.health?.latencyMs])).toEqual([[after, 42]]);
    }
  });

  it("keeps a stale instance stale", () => {
    const state = withInstances("a");
    reap(state, t0 + 31_000);
    reportHealth(state, healthInput("a", { healthy: true }), t0 + 31_001);
    expect(state.get("a")!.stale).toBe(true);
  });

  it("takes an unhealthy instance out of routing and healthy-only resolution only", () => {
    const state = withInstances("a", "b");
    reportHealth(state, healthInput("a", { healthy: false, consecutiveFailures: 1 }));
    expect(ids(state.resolve({ serviceName: "checkout", healthyOnly: true, minWeight: 0 }))).toEqual(["b"]);
    expect(ids(state.resolve({ serviceName: "checkout", healthyOnly: false, minWeight: 0 }))).toEqual(["a", "b"]);
    for (let i = 0; i < 10; i++) {
      expect(state.select({ serviceName: "checkout", strategy: "round_robin" })?.instance.instanceId).toBe("b");
    }
  });

  it("drops the reason when the new result has none", () => {
    const state = withInstances("a");
    reportHealth(state, healthInput("a", { healthy: false, reason: "refused" }));
    reportHealth(state, healthInput("a", { healthy: true }));
    expect(state.get("a")!.health).not.toHaveProperty("reason");
  });
});

describe("health-check sweep", () => {
  it.each([
    [2, 3, false],
    [3, 3, true],
    [4, 3, true],
    [1, 1, true],
    [0, 1, false],
  ])("with %d consecutive failures and threshold %d evicts: %s", (failures, threshold, evicted) => {
    const state = withInstances("a");
    const plan = state.planSweep([healthInput("a", { healthy: false, consecutiveFailures: failures })], threshold, t0);
    state.apply(plan.change);
    expect(plan.evicted).toEqual(evicted ? ["a"] : []);
    expect(state.get("a") === undefined).toBe(evicted);
  });

  it("removes an evicted instance with reason evicted_unhealthy and its latest health", () => {
    const state = withInstances("a");
    const { change } = state.planSweep([healthInput("a", { healthy: false, consecutiveFailures: 3, reason: "503" })], 3, t0 + 9);
    expect(change.quiet).toEqual([]);
    expect(change.events).toHaveLength(1);
    expect(change.events[0]).toMatchObject({
      kind: "removed",
      reason: "evicted_unhealthy",
      record: { healthy: false, health: { consecutiveFailures: 3, reason: "503", lastCheckMs: t0 + 9 } },
    });
  });

  it("records every result like a health update: flips as events, the rest quiet", () => {
    const state = withInstances("flip", "same", "gone");
    const plan = commit(
      state,
      state.planSweep(
        [
          healthInput("flip", { healthy: false, consecutiveFailures: 1 }),
          healthInput("same", { healthy: true, latencyMs: 99 }),
          healthInput("gone", { healthy: false, consecutiveFailures: 5 }),
        ],
        3,
        t0,
      ).change,
    ).events;
    expect(plan.map((e) => `${e.kind}:${e.record.instance.instanceId}`)).toEqual(["updated:flip", "removed:gone"]);
    expect(state.get("flip")!.healthy).toBe(false);
    expect(state.get("same")!.health?.latencyMs).toBe(99);
  });

  it("skips results for unknown instances and reports each once", () => {
    const state = withInstances("a");
    const plan = state.planSweep(
      [healthInput("ghost", { consecutiveFailures: 9 }), healthInput("a"), healthInput("ghost"), healthInput("other")],
      3,
      t0,
    );
    expect(plan.unknown).toEqual(["ghost", "other"]);
    expect(plan.evicted).toEqual([]);
    expect(plan.change.quiet.map((r) => r.instance.instanceId)).toEqual(["a"]);
  });

  it("lets a later result for the same instance supersede an earlier one", () => {
    const state = withInstances("a");
    const plan = state.planSweep(
      [healthInput("a", { healthy: false, consecutiveFailures: 5 }), healthInput("a", { healthy: true, consecutiveFailures: 0 })],
      3,
      t0,
    );
    expect(plan.evicted).toEqual([]);
    expect(plan.change.events).toEqual([]);
    expect(plan.change.quiet).toHaveLength(1);
    expect(plan.change.quiet[0]!.health?.consecutiveFailures).toBe(0);
  });

  it("leaves instances not named in the sweep alone, whatever failures they recorded", () => {
    const state = withInstances("a", "b");
    reportHealth(state, healthInput("a", { healthy: false, consecutiveFailures: 10 }));
    const plan = commit(state, state.planSweep([healthInput("b")], 1, t0).change);
    expect(plan.events).toEqual([]);
    expect(state.get("a")).toBeDefined();
  });

  it("lists evicted ids in order of first mention", () => {
    const state = withInstances("a", "b", "c");
    const plan = state.planSweep(
      ["c", "a", "b"].map((id) => healthInput(id, { healthy: false, consecutiveFailures: id === "b" ? 0 : 3 })),
      3,
      t0,
    );
    expect(plan.evicted).toEqual(["c", "a"]);
  });

  it.each([
    [0, "must be >= 1, got 0"],
    [-3, "must be >= 1, got -3"],
    [1.5, "must be an integer, got 1.5"],
  ])("rejects evict_threshold %d with InvalidFieldError", (threshold, reason) => {
    const error = thrown(() => withInstances("a").planSweep([healthInput("a")], threshold, t0));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).field).toBe("evict_threshold");
    expect((error as InvalidFieldError).reason).toBe(reason);
  });
});
