import { describe, expect, it } from "vitest";
import type { InstanceRecord, RegistryChange } from "../../../server/core/registry/model.js";
import type { RegistryState } from "../../../server/core/registry/registry-state.js";
import { commit, healthInput, instanceInput, newState, reap, register, t0 } from "./builders.js";

/** a (fresh), b (stale, about to expire), c (unhealthy); heartbeat timeout 30 s, eviction after 90 s. */
function populated(): RegistryState {
  const state = newState({ heartbeatTimeoutMs: 30_000, deregisterStaleAfterMs: 90_000, selfPreservationThreshold: 1 });
  register(state, ["a", "b", "c"].map((instanceId) => instanceInput({ instanceId })));
  state.apply(state.planHealthUpdate(healthInput("c", { healthy: false, consecutiveFailures: 1 }), t0));
  for (const id of ["a", "c"]) state.apply(state.planHeartbeat(id, 2, t0 + 80_000));
  reap(state, t0 + 80_001);
  return state;
}

function view(state: RegistryState): unknown {
  return {
    records: state.records(),
    size: state.size,
    selfPreservation: state.selfPreservation,
    topology: state.topology(),
  };
}

const plans: [string, (state: RegistryState) => unknown][] = [
  ["planRegister", (s) => s.planRegister(instanceInput({ instanceId: "d" }), t0 + 90_000)],
  ["planBulkRegister", (s) => s.planBulkRegister([instanceInput({ instanceId: "d" }), instanceInput({ instanceId: "a" })], false, t0)],
  ["planDeregister", (s) => s.planDeregister("a")],
  ["planHeartbeat (quiet)", (s) => s.planHeartbeat("a", 9, t0 + 90_000)],
  ["planHeartbeat (stale to fresh)", (s) => s.planHeartbeat("b", 9, t0 + 90_000)],
  ["planHealthUpdate", (s) => s.planHealthUpdate(healthInput("a", { healthy: false }), t0 + 90_000)],
  ["planSweep", (s) => s.planSweep([healthInput("a", { consecutiveFailures: 3 }), healthInput("c")], 3, t0 + 90_000)],
  ["planReap", (s) => s.planReap(t0 + 200_000)],
];

describe("planning", () => {
  it.each(plans)("%s leaves the state and its records untouched", (_, plan) => {
    const state = populated();
    const before = view(state);
    const records = state.records();
    plan(state);
    expect(view(state)).toEqual(before);
    expect(state.records()).toEqual(records);
    state.records().forEach((record, i) => expect(record).toBe(records[i]));
  });
});

describe("records are immutable", () => {
  const changes: [string, (state: RegistryState) => RegistryChange][] = [
    ["heartbeat", (s) => s.planHeartbeat("a", 5, t0 + 85_000)],
    ["stale-to-fresh heartbeat", (s) => s.planHeartbeat("b", 5, t0 + 85_000)],
    ["health update", (s) => s.planHealthUpdate(healthInput("a", { latencyMs: 77 }), t0 + 85_000)],
    ["health flip", (s) => s.planHealthUpdate(healthInput("c"), t0 + 85_000)],
    ["staleness pass", (s) => s.planReap(t0 + 115_000).change],
  ];

  it.each(changes)("a %s stores new record objects and leaves the old ones as they were", (_, plan) => {
    const state = populated();
    const before = new Map(state.records().map((record) => [record.instance.instanceId, record]));
    const copies = new Map([...before].map(([id, record]) => [id, structuredClone(record)]));
    const change = commit(state, plan(state));
    const touched = [...change.events.filter((e) => e.kind !== "removed").map((e) => e.record), ...change.quiet];
    expect(touched.length).toBeGreaterThan(0);
    for (const record of touched) {
      const id = record.instance.instanceId;
      expect(record).not.toBe(before.get(id));
      expect(state.get(id)).toBe(record);
      expect(before.get(id)).toEqual(copies.get(id));
    }
  });

  it.each([
    ["a", "registered and heartbeating"],
    ["b", "marked stale"],
    ["c", "with a health record"],
  ])("freezes the record of %s (%s), its instance, metadata and health", (id) => {
    const record = populated().get(id)!;
    expect(Object.isFrozen(record)).toBe(true);
    expect(Object.isFrozen(record.instance)).toBe(true);
    expect(Object.isFrozen(record.instance.metadata)).toBe(true);
    if (record.health !== undefined) expect(Object.isFrozen(record.health)).toBe(true);
  });

  it("removing an instance twice removes it once", () => {
    const state = populated();
    const removal = state.planDeregister("a");
    state.apply(removal);
    state.apply(removal);
    expect(state.size).toBe(2);
  });
});

describe("apply", () => {
  it("applying the same registration twice leaves one instance", () => {
    const state = newState();
    const change = state.planRegister(instanceInput({ instanceId: "a" }), t0);
    state.apply(change);
    state.apply(change);
    expect(state.size).toBe(1);
    expect(state.records()).toHaveLength(1);
  });

  it("does not resurrect a removed instance from a late update or quiet record", () => {
    const state = populated();
    const update = state.planHealthUpdate(healthInput("a", { healthy: false }), t0 + 81_000);
    const quiet = state.planHeartbeat("a", 1, t0 + 81_000);
    const removal = state.planDeregister("a");
    state.apply(removal);
    state.apply(update);
    state.apply(quiet);
    expect(state.get("a")).toBeUndefined();
    expect(state.size).toBe(2);
    expect(state.records().map((r: InstanceRecord) => r.instance.instanceId)).toEqual(["b", "c"]);
  });

  it("leaves self-preservation alone for changes that do not carry it", () => {
    const state = newState();
    state.load([], true, t0);
    state.apply(state.planRegister(instanceInput({ instanceId: "a" }), t0));
    expect(state.selfPreservation).toBe(true);
  });
});
