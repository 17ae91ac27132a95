import { describe, expect, it } from "vitest";
import type { InstanceInput } from "../../../server/core/registry/model.js";
import type { RegistryState } from "../../../server/core/registry/registry-state.js";
import { pickInstance, type SelectionStrategy } from "../../../server/core/registry/selection.js";
import { healthInput, instanceInput, mulberry32, newState, register, reportHealth, sequence, t0 } from "./builders.js";

const strategies: SelectionStrategy[] = ["weighted_random", "round_robin", "least_connections"];

function stateWith(specs: Partial<InstanceInput>[], rng: () => number = mulberry32(7)): RegistryState {
  const state = newState({}, rng);
  register(state, specs.map((spec) => instanceInput(spec)));
  return state;
}

function connections(state: RegistryState, counts: Record<string, number>): void {
  for (const [id, count] of Object.entries(counts)) state.apply(state.planHeartbeat(id, count, t0 + 1));
}

function picks(state: RegistryState, count: number, query: { serviceName?: string; region?: string; strategy: SelectionStrategy }): string[] {
  return Array.from({ length: count }, () => state.select({ serviceName: "checkout", ...query })?.instance.instanceId ?? "none");
}

describe("weighted random", () => {
  it("picks in proportion to weight (20,000 seeded picks over weights 1/3/6, within ±2 points)", () => {
    const state = stateWith(
      [
        { instanceId: "w1", weight: 1 },
        { instanceId: "w3", weight: 3 },
        { instanceId: "w6", weight: 6 },
      ],
      mulberry32(20_240_601),
    );
    const counts = new Map<string, number>();
    for (const id of picks(state, 20_000, { strategy: "weighted_random" })) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect(Math.abs((counts.get("w1") ?? 0) / 20_000 - 0.1)).toBeLessThan(0.02);
    expect(Math.abs((counts.get("w3") ?? 0) / 20_000 - 0.3)).toBeLessThan(0.02);
    expect(Math.abs((counts.get("w6") ?? 0) / 20_000 - 0.6)).toBeLessThan(0.02);
  });

  it.each([
    [0, "a"],
    [0.0999, "a"],
    [0.1, "b"],
    [0.3999, "b"],
    [0.4, "c"],
    [0.9999, "c"],
  ])("maps rng %d onto cumulative weights 1/3/6 (sorted by id) as %s", (r, expected) => {
    const state = stateWith(
      [
        { instanceId: "c", weight: 6 },
        { instanceId: "a", weight: 1 },
        { instanceId: "b", weight: 3 },
      ],
      sequence(r),
    );
    expect(state.select({ serviceName: "checkout", strategy: "weighted_random" })?.instance.instanceId).toBe(expected);
  });
});

describe("round robin", () => {
  it("cycles through routable instances in instance_id order, whatever the registration order", () => {
    const state = stateWith([{ instanceId: "c" }, { instanceId: "a" }, { instanceId: "b" }]);
    expect(picks(state, 7, { strategy: "round_robin" })).toEqual(["a", "b", "c", "a", "b", "c", "a"]);
  });

  it("keeps a separate rotation per service", () => {
    const state = stateWith([
      { instanceId: "a1" },
      { instanceId: "a2" },
      { instanceId: "p1", serviceName: "payments" },
      { instanceId: "p2", serviceName: "payments" },
      { instanceId: "p3", serviceName: "payments" },
    ]);
    const sequenceSeen = [
      ...picks(state, 1, { strategy: "round_robin" }),
      ...picks(state, 2, { serviceName: "payments", strategy: "round_robin" }),
      ...picks(state, 1, { strategy: "round_robin" }),
      ...picks(state, 2, { serviceName: "payments", strategy: "round_robin" }),
    ];
    expect(sequenceSeen).toEqual(["a1", "p1", "p2", "a2", "p3", "p1"]);
  });

  it("keeps a separate rotation for a preferred region", () => {
    const state = stateWith([
      { instanceId: "e1", region: "eu" },
      { instanceId: "e2", region: "eu" },
      { instanceId: "u1", region: "us" },
    ]);
    expect(picks(state, 1, { strategy: "round_robin" })).toEqual(["e1"]);
    expect(picks(state, 3, { region: "us", strategy: "round_robin" })).toEqual(["u1", "u1", "u1"]);
    expect(picks(state, 2, { strategy: "round_robin" })).toEqual(["e2", "u1"]);
  });

  it("skips instances that are not routable", () => {
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }, { instanceId: "c" }]);
    reportHealth(state, healthInput("b", { healthy: false }));
    expect(picks(state, 4, { strategy: "round_robin" })).toEqual(["a", "c", "a", "c"]);
  });

  it("starts over when a service's last instance leaves and the service returns", () => {
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }]);
    picks(state, 1, { strategy: "round_robin" });
    for (const id of ["a", "b"]) state.apply(state.planDeregister(id));
    register(state, [instanceInput({ instanceId: "a" }), instanceInput({ instanceId: "b" })]);
    expect(picks(state, 1, { strategy: "round_robin" })).toEqual(["a"]);
  });

  it("starts every rotation over after load", () => {
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }]);
    picks(state, 1, { strategy: "round_robin" });
    state.load(state.records(), false);
    expect(picks(state, 1, { strategy: "round_robin" })).toEqual(["a"]);
  });
});

describe("least connections", () => {
  it("picks the instance with the fewest active connections", () => {
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }, { instanceId: "c" }]);
    connections(state, { a: 9, b: 2, c: 5 });
    expect(new Set(picks(state, 50, { strategy: "least_connections" }))).toEqual(new Set(["b"]));
  });

  it.each([
    [0, "b"],
    [0.2, "b"],
    [0.25, "c"],
    [0.99, "c"],
  ])("breaks ties by weighted random among the tied (rng %d → %s)", (r, expected) => {
    const state = stateWith(
      [
        { instanceId: "a", weight: 100 },
        { instanceId: "b", weight: 1 },
        { instanceId: "c", weight: 3 },
      ],
      sequence(r),
    );
    connections(state, { a: 4, b: 1, c: 1 });
    expect(state.select({ serviceName: "checkout", strategy: "least_connections" })?.instance.instanceId).toBe(expected);
  });

  it("treats instances that never reported connections as having none", () => {
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }]);
    connections(state, { a: 1 });
    expect(new Set(picks(state, 20, { strategy: "least_connections" }))).toEqual(new Set(["b"]));
  });

  it("ignores a less loaded instance that is not routable", () => {
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }]);
    connections(state, { a: 0, b: 50 });
    reportHealth(state, healthInput("a", { healthy: false }));
    expect(picks(state, 5, { strategy: "least_connections" })).toEqual(["b", "b", "b", "b", "b"]);
  });
});

describe("region preference", () => {
  const regions: Partial<InstanceInput>[] = [
    { instanceId: "e1", region: "eu" },
    { instanceId: "e2", region: "eu" },
    { instanceId: "u1", region: "us" },
  ];

  it.each(strategies)("%s picks only in the preferred region when it has a routable instance", (strategy) => {
    const state = stateWith(regions);
    expect(new Set(picks(state, 200, { region: "us", strategy }))).toEqual(new Set(["u1"]));
  });

  it.each(strategies)("%s falls back to every region when the preferred one has no routable instance", (strategy) => {
    const state = stateWith(regions);
    reportHealth(state, healthInput("u1", { healthy: false }));
    expect(new Set(picks(state, 200, { region: "us", strategy }))).toEqual(new Set(["e1", "e2"]));
  });

  it("falls back to every region for a region without instances", () => {
    const state = stateWith(regions);
    expect(new Set(picks(state, 200, { region: "ap", strategy: "weighted_random" }))).toEqual(new Set(["e1", "e2", "u1"]));
  });
});

describe("no routable instance", () => {
  it.each(strategies)("%s returns undefined when every instance is unhealthy or stale", (strategy) => {
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }]);
    reportHealth(state, healthInput("a", { healthy: false }));
    state.apply(state.planReap(t0 + 31_000).change);
    expect(state.select({ serviceName: "checkout", strategy })).toBeUndefined();
  });

  it.each(strategies)("%s returns undefined for an unknown service", (strategy) => {
    expect(stateWith([{ instanceId: "a" }]).select({ serviceName: "nope", strategy })).toBeUndefined();
  });

  it.each(strategies)("pickInstance(%s) returns undefined for no candidates", (strategy) => {
    expect(pickInstance(strategy, [], { rng: () => 0, counters: new Map(), key: "k" })).toBeUndefined();
  });
});
