import { describe, expect, it } from "vitest";
import { NotFoundError } from "../../../server/core/errors.js";
import { defaultRegistryLimits } from "../../../server/core/registry/model.js";
import type { RegistryState } from "../../../server/core/registry/registry-state.js";
import { commit, healthInput, ids, instanceInput, newState, reap, register, reportHealth, t0, thrown } from "./builders.js";

const timeout = 30_000;
const evictAfter = 90_000;

/** Registers `count` instances `i0`, `i1`, ... of "checkout" at t0. */
function fleet(state: RegistryState, count: number): void {
  register(state, Array.from({ length: count }, (_, i) => instanceInput({ instanceId: `i${i}` })));
}

function heartbeat(state: RegistryState, instanceId: string, nowMs: number, activeConnections?: number): void {
  state.apply(state.planHeartbeat(instanceId, activeConnections, nowMs));
}

function eventSummary(state: RegistryState, nowMs: number): string[] {
  return reap(state, nowMs).events.map((e) => `${e.kind}:${e.record.instance.instanceId}${e.reason ? `:${e.reason}` : ""}`);
}

describe("defaultRegistryLimits", () => {
  it("defaults to 30 s, 100 per service, eviction after 3 × the timeout and 50% self-preservation", () => {
    expect(defaultRegistryLimits()).toEqual({
      heartbeatTimeoutMs: 30_000,
      maxInstancesPerService: 100,
      deregisterStaleAfterMs: 90_000,
      selfPreservationThreshold: 0.5,
    });
  });

  it.each([
    [{ heartbeatTimeoutMs: 10_000 }, 30_000],
    [{ heartbeatTimeoutMs: 10_000, deregisterStaleAfterMs: 0 }, 0],
    [{ deregisterStaleAfterMs: 5_000 }, 5_000],
  ])("derives deregisterStaleAfterMs from %o as %d", (overrides, expected) => {
    expect(defaultRegistryLimits(overrides).deregisterStaleAfterMs).toBe(expected);
  });
});

describe("heartbeat", () => {
  it("rejects an unknown instance with NotFoundError naming it", () => {
    const error = thrown(() => newState().planHeartbeat("ghost", undefined, t0));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message).toContain('"ghost"');
  });

  it("on a fresh instance is a quiet update of lastHeartbeatMs, without an event", () => {
    const state = newState();
    fleet(state, 1);
    const change = state.planHeartbeat("i0", undefined, t0 + 5_000);
    expect(change.events).toEqual([]);
    expect(change.quiet).toHaveLength(1);
    expect(change.quiet[0]!.instance.lastHeartbeatMs).toBe(t0 + 5_000);
    expect(change.quiet[0]!.instance.registeredAtMs).toBe(t0);
  });

  it.each([
    [7, 7],
    [0, 0],
    [undefined, 3],
  ])("with active_connections %s leaves the count at %d", (reported, expected) => {
    const state = newState();
    fleet(state, 1);
    heartbeat(state, "i0", t0 + 1, 3);
    heartbeat(state, "i0", t0 + 2, reported);
    expect(state.get("i0")!.activeConnections).toBe(expected);
  });

  it("on a stale instance makes it fresh with an updated event", () => {
    const state = newState();
    fleet(state, 1);
    reap(state, t0 + timeout + 1);
    expect(state.get("i0")!.stale).toBe(true);
    const change = state.planHeartbeat("i0", undefined, t0 + timeout + 2);
    expect(change.quiet).toEqual([]);
    expect(change.events.map((e) => [e.kind, e.record.stale])).toEqual([["updated", false]]);
    state.apply(change);
    expect(state.staleInstances()).toEqual([]);
    expect(state.select({ serviceName: "checkout", strategy: "round_robin" })?.instance.instanceId).toBe("i0");
  });

  it("never moves lastHeartbeatMs backwards when the clock does", () => {
    const state = newState();
    fleet(state, 1);
    heartbeat(state, "i0", t0 + 10_000);
    heartbeat(state, "i0", t0 + 4_000);
    expect(state.get("i0")!.instance.lastHeartbeatMs).toBe(t0 + 10_000);
  });

  it("keeps the health record and healthy flag", () => {
    const state = newState();
    fleet(state, 1);
    reportHealth(state, healthInput("i0", { healthy: false, consecutiveFailures: 1 }));
    heartbeat(state, "i0", t0 + 1);
    expect(state.get("i0")!.healthy).toBe(false);
    expect(state.get("i0")!.health?.consecutiveFailures).toBe(1);
  });
});

describe("staleness pass", () => {
  it.each([
    [timeout - 1, false],
    [timeout, false],
    [timeout + 1, true],
  ])("after %d ms of silence marks the instance stale: %s", (silentMs, stale) => {
    const state = newState({ heartbeatTimeoutMs: timeout });
    fleet(state, 1);
    const events = reap(state, t0 + silentMs).events;
    expect(state.get("i0")!.stale).toBe(stale);
    expect(events.map((e) => e.kind)).toEqual(stale ? ["updated"] : []);
  });

  it("measures silence from the last heartbeat, not from registration", () => {
    const state = newState();
    fleet(state, 2);
    heartbeat(state, "i1", t0 + 20_000);
    expect(eventSummary(state, t0 + timeout + 1)).toEqual(["updated:i0"]);
    expect(ids(state.staleInstances())).toEqual(["i0"]);
  });

  it("emits the stale transition once, not on every pass", () => {
    const state = newState();
    fleet(state, 1);
    expect(eventSummary(state, t0 + timeout + 1)).toEqual(["updated:i0"]);
    expect(eventSummary(state, t0 + timeout + 2)).toEqual([]);
  });

  it("takes stale instances out of routing but keeps them in non-healthy-only resolution", () => {
    const state = newState();
    fleet(state, 1);
    reap(state, t0 + timeout + 1);
    expect(state.select({ serviceName: "checkout", strategy: "weighted_random" })).toBeUndefined();
    expect(state.resolve({ serviceName: "checkout", healthyOnly: true, minWeight: 0 })).toEqual([]);
    expect(ids(state.resolve({ serviceName: "checkout", healthyOnly: false, minWeight: 0 }))).toEqual(["i0"]);
  });

  it.each([
    [evictAfter, []],
    [evictAfter + 1, ["removed:i0:evicted_stale"]],
  ])("after %d ms of silence evicts per deregisterStaleAfterMs: %o", (silentMs, expected) => {
    const state = newState({ heartbeatTimeoutMs: timeout, deregisterStaleAfterMs: evictAfter });
    fleet(state, 3);
    heartbeat(state, "i1", t0 + silentMs);
    heartbeat(state, "i2", t0 + silentMs);
    reap(state, t0 + timeout + 1);
    expect(eventSummary(state, t0 + silentMs)).toEqual(expected);
    expect(state.get("i0") === undefined).toBe(expected.length > 0);
  });

  it("removes an instance that goes stale and expires in one pass with only a removed event, marked stale", () => {
    const state = newState({ selfPreservationThreshold: 1 });
    fleet(state, 1);
    const change = reap(state, t0 + evictAfter + 1);
    expect(change.events).toHaveLength(1);
    expect(change.events[0]).toMatchObject({ kind: "removed", reason: "evicted_stale", record: { stale: true } });
    expect(state.size).toBe(0);
  });

  it("never evicts when deregisterStaleAfterMs is 0", () => {
    const state = newState({ deregisterStaleAfterMs: 0, selfPreservationThreshold: 1 });
    fleet(state, 2);
    reap(state, t0 + timeout + 1);
    expect(eventSummary(state, t0 + 365 * 24 * 3_600_000)).toEqual([]);
    expect(state.size).toBe(2);
    expect(ids(state.staleInstances())).toEqual(["i0", "i1"]);
  });

  it("ignores a heartbeat time in the future of the pass (clock skew)", () => {
    const state = newState();
    fleet(state, 1);
    heartbeat(state, "i0", t0 + 60_000);
    expect(eventSummary(state, t0 + 1_000)).toEqual([]);
  });
});

describe("startup grace", () => {
  /** After an outage far longer than every timeout. */
  const loadedAt = t0 + 600_000;

  /**
   * `s0` stored as stale already and `i0`..`i{count-1}` last heard of at
   * t0 + 30 s, loaded into a new state at `loadedAt`, as a restart after a
   * 10-minute outage does.
   */
  function restarted(count: number, limits = { heartbeatTimeoutMs: timeout, deregisterStaleAfterMs: evictAfter }): RegistryState {
    const before = newState(limits);
    register(before, [instanceInput({ instanceId: "s0" })]);
    reap(before, t0 + timeout + 1);
    register(before, Array.from({ length: count }, (_, i) => instanceInput({ instanceId: `i${i}` })), t0 + timeout + 1);
    expect(ids(before.staleInstances())).toEqual(["s0"]);
    const state = newState(limits);
    state.load(before.records(), false, loadedAt);
    return state;
  }

  it.each([
    [1, []],
    [timeout, []],
    [timeout + 1, ["updated:i0", "updated:i1"]],
  ])("measures silence from the load, not from heartbeats before it: %d ms after the load marks %o", (sinceLoad, expected) => {
    const state = restarted(2);
    expect(eventSummary(state, loadedAt + sinceLoad)).toEqual(expected);
    expect(ids(state.staleInstances())).toEqual(expected.length === 0 ? ["s0"] : ["i0", "i1", "s0"]);
  });

  it("keeps the instances routable through the grace", () => {
    const state = restarted(2);
    reap(state, loadedAt + timeout);
    expect(ids(state.resolve({ serviceName: "checkout", healthyOnly: true, minWeight: 0 }))).toEqual(["i0", "i1"]);
    expect(state.select({ serviceName: "checkout", strategy: "round_robin" })?.instance.instanceId).toBe("i0");
  });

  it("keeps an instance stored as stale stale, until its heartbeat", () => {
    const state = restarted(1);
    expect(state.get("s0")!.stale).toBe(true);
    expect(eventSummary(state, loadedAt + 1)).toEqual([]);
    expect(state.get("s0")!.stale).toBe(true);
    heartbeat(state, "s0", loadedAt + 2);
    expect(state.get("s0")!.stale).toBe(false);
  });

  it("measures silence from a heartbeat after the load as usual", () => {
    const state = restarted(2);
    heartbeat(state, "i1", loadedAt + 20_000);
    expect(eventSummary(state, loadedAt + timeout + 1)).toEqual(["updated:i0"]);
    expect(eventSummary(state, loadedAt + 20_000 + timeout + 1)).toEqual(["updated:i1"]);
  });

  it("delays eviction the same way, stored-stale instances included", () => {
    const state = restarted(3);
    reap(state, loadedAt + timeout + 1);
    heartbeat(state, "i1", loadedAt + evictAfter);
    heartbeat(state, "i2", loadedAt + evictAfter);
    expect(eventSummary(state, loadedAt + evictAfter)).toEqual([]);
    expect(eventSummary(state, loadedAt + evictAfter + 1)).toEqual(["removed:i0:evicted_stale", "removed:s0:evicted_stale"]);
  });

  it("does not apply to a state that was never loaded", () => {
    const state = newState();
    fleet(state, 1);
    expect(eventSummary(state, t0 + timeout + 1)).toEqual(["updated:i0"]);
  });
});

describe("self-preservation", () => {
  /** Four instances; `alive` of them heartbeat at `atMs`. */
  function fourInstances(alive: number, atMs: number): RegistryState {
    const state = newState({ heartbeatTimeoutMs: timeout, deregisterStaleAfterMs: evictAfter });
    fleet(state, 4);
    for (let i = 0; i < alive; i++) heartbeat(state, `i${i}`, atMs);
    return state;
  }

  it("engages when more than the threshold share would be evicted: evicts none, still marks stale", () => {
    const state = fourInstances(1, t0 + evictAfter);
    const plan = state.planReap(t0 + evictAfter + 1);
    expect(plan.selfPreservation).toBe(true);
    expect(plan.change.selfPreservation).toBe(true);
    expect(plan.change.events.map((e) => `${e.kind}:${e.record.instance.instanceId}`)).toEqual([
      "updated:i1",
      "updated:i2",
      "updated:i3",
    ]);
    expect(state.selfPreservation).toBe(false);
    state.apply(plan.change);
    expect(state.selfPreservation).toBe(true);
    expect(state.size).toBe(4);
  });

  it("holds on later passes while the share stays above the threshold", () => {
    const state = fourInstances(1, t0 + evictAfter);
    reap(state, t0 + evictAfter + 1);
    heartbeat(state, "i0", t0 + 2 * evictAfter);
    expect(eventSummary(state, t0 + 2 * evictAfter + 1)).toEqual([]);
    expect(state.selfPreservation).toBe(true);
    expect(state.size).toBe(4);
  });

  it("releases once heartbeats recover, evicting the instances still expired", () => {
    const state = fourInstances(1, t0 + evictAfter);
    reap(state, t0 + evictAfter + 1);
    heartbeat(state, "i1", t0 + evictAfter + 2);
    heartbeat(state, "i2", t0 + evictAfter + 2);
    expect(eventSummary(state, t0 + evictAfter + 3)).toEqual(["removed:i3:evicted_stale"]);
    expect(state.selfPreservation).toBe(false);
    expect(state.size).toBe(3);
  });

  it.each([
    [0.5, 2, false],
    [0.5, 3, true],
    [0.25, 2, true],
    [1, 4, false],
    [0, 1, true],
  ])("with threshold %d and %d of 4 expiring, engages: %s", (threshold, expiring, engaged) => {
    const state = newState({ heartbeatTimeoutMs: timeout, deregisterStaleAfterMs: evictAfter, selfPreservationThreshold: threshold });
    fleet(state, 4);
    for (let i = expiring; i < 4; i++) heartbeat(state, `i${i}`, t0 + evictAfter);
    const change = reap(state, t0 + evictAfter + 1);
    expect(state.selfPreservation).toBe(engaged);
    expect(change.events.filter((e) => e.kind === "removed")).toHaveLength(engaged ? 0 : expiring);
    expect(state.size).toBe(engaged ? 4 : 4 - expiring);
  });

  it("is restored by load", () => {
    const state = newState();
    fleet(state, 2);
    const records = state.records();
    const restored = newState();
    restored.load(records, true, t0);
    expect(restored.selfPreservation).toBe(true);
    expect(restored.records()).toEqual(records);
    expect(commit(restored, restored.planReap(t0 + 1).change).selfPreservation).toBe(false);
    expect(restored.selfPreservation).toBe(false);
  });
});
