import { describe, expect, it } from "vitest";
import { effectiveWeight, type InstanceInput } from "../../../server/core/registry/model.js";
import type { RegistryState } from "../../../server/core/registry/registry-state.js";
import { pickInstance, type SelectionStrategy } from "../../../server/core/registry/selection.js";
import { healthInput, instanceInput, mulberry32, newState, register, reportHealth, sequence, t0 } from "./builders.js";

const strategies: SelectionStrategy[] = ["weighted_random", "round_robin", "least_connections", "power_of_two_choices"];

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

/** Fails and passes a check of each instance, so it warms up from step 0 (10% of its weight). */
function warmingUp(state: RegistryState, ...instanceIds: string[]): void {
  for (const id of instanceIds) {
    reportHealth(state, healthInput(id, { healthy: false, consecutiveFailures: 1 }), t0 + 1);
    reportHealth(state, healthInput(id, { healthy: true }), t0 + 2);
    expect(state.get(id)!.warmup?.step).toBe(0);
  }
}

/** Share of each id in `ids`. */
function shares(ids: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return new Map([...counts].map(([id, count]) => [id, count / ids.length]));
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

describe("effective weights", () => {
  it("weighted random gives a warming instance its ramped share (20,000 seeded picks, within ±2 points)", () => {
    const state = stateWith(
      [
        { instanceId: "a", weight: 100 },
        { instanceId: "b", weight: 10 },
        { instanceId: "c", weight: 20 },
      ],
      mulberry32(424_242),
    );
    warmingUp(state, "a");
    expect(effectiveWeight(state.get("a")!)).toBe(10);
    const seen = shares(picks(state, 20_000, { strategy: "weighted_random" }));
    expect(Math.abs(seen.get("a")! - 0.25)).toBeLessThan(0.02);
    expect(Math.abs(seen.get("b")! - 0.25)).toBeLessThan(0.02);
    expect(Math.abs(seen.get("c")! - 0.5)).toBeLessThan(0.02);
  });

  it.each([
    [0.2, "a"],
    [0.24, "a"],
    [0.25, "b"],
    [0.9, "b"],
  ])("least connections breaks ties by effective weight (warming a: 100 → 10, b: 30; rng %d → %s)", (r, expected) => {
    const state = stateWith(
      [
        { instanceId: "a", weight: 100 },
        { instanceId: "b", weight: 30 },
      ],
      sequence(r),
    );
    warmingUp(state, "a");
    connections(state, { a: 1, b: 1 });
    expect(state.select({ serviceName: "checkout", strategy: "least_connections" })?.instance.instanceId).toBe(expected);
  });

  it("round robin stays a plain rotation: a warming instance gets its turn like the others", () => {
    const state = stateWith([
      { instanceId: "a", weight: 100 },
      { instanceId: "b", weight: 1 },
      { instanceId: "c", weight: 50 },
    ]);
    warmingUp(state, "a");
    expect(picks(state, 6, { strategy: "round_robin" })).toEqual(["a", "b", "c", "a", "b", "c"]);
  });
});

describe("power of two choices", () => {
  /** a, b, c with weights 1, 3, 6 (cumulative 1, 4, 10) and 5, 1, 3 connections. */
  function threeLoaded(rng: () => number): RegistryState {
    const state = stateWith(
      [
        { instanceId: "a", weight: 1 },
        { instanceId: "b", weight: 3 },
        { instanceId: "c", weight: 6 },
      ],
      rng,
    );
    connections(state, { a: 5, b: 1, c: 3 });
    return state;
  }

  it.each([
    [0.05, 0.1, "a then b", "b"],
    [0.5, 0, "c then a", "c"],
    [0.5, 0.9, "c then b", "b"],
    [0.2, 0.99, "b then c", "b"],
    [0.2, 0, "b then a", "b"],
  ])("draws two distinct instances by weight and takes the less loaded (rng %d, %d: %s → %s)", (r1, r2, _, expected) => {
    const state = threeLoaded(sequence(r1, r2));
    expect(state.select({ serviceName: "checkout", strategy: "power_of_two_choices" })?.instance.instanceId).toBe(expected);
  });

  it.each([
    [0.05, 0.9, "c"],
    [0.5, 0, "c"],
    [0.2, 0, "b"],
  ])("on equal connections takes the higher effective weight (rng %d, %d → %s)", (r1, r2, expected) => {
    const state = threeLoaded(sequence(r1, r2));
    connections(state, { a: 2, b: 2, c: 2 });
    expect(state.select({ serviceName: "checkout", strategy: "power_of_two_choices" })?.instance.instanceId).toBe(expected);
  });

  it.each([
    [0, "d"],
    [0.9, "e"],
  ])("on equal connections and weights takes the first drawn (rng %d → %s)", (r, expected) => {
    const state = stateWith(
      [
        { instanceId: "d", weight: 5 },
        { instanceId: "e", weight: 5 },
      ],
      sequence(r, 0),
    );
    expect(state.select({ serviceName: "checkout", strategy: "power_of_two_choices" })?.instance.instanceId).toBe(expected);
  });

  it("compares effective weights: a warming instance loses a tie it would win on its configured weight", () => {
    const state = stateWith([
      { instanceId: "a", weight: 100 },
      { instanceId: "b", weight: 30 },
    ]);
    warmingUp(state, "a");
    expect(new Set(picks(state, 100, { strategy: "power_of_two_choices" }))).toEqual(new Set(["b"]));
  });

  it("with two candidates always takes the less loaded one", () => {
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }]);
    connections(state, { a: 7, b: 6 });
    expect(new Set(picks(state, 200, { strategy: "power_of_two_choices" }))).toEqual(new Set(["b"]));
  });

  it("returns the only candidate, drawing once", () => {
    let draws = 0;
    const state = stateWith([{ instanceId: "solo" }], () => {
      draws++;
      return 0.5;
    });
    expect(state.select({ serviceName: "checkout", strategy: "power_of_two_choices" })?.instance.instanceId).toBe("solo");
    expect(draws).toBe(1);
  });

  it("over equal weights gives the least loaded 2/3, the middle 1/3 and the most loaded none (20,000 seeded picks, ±2 points)", () => {
    const state = stateWith([{ instanceId: "low" }, { instanceId: "mid" }, { instanceId: "high" }], mulberry32(99));
    connections(state, { low: 0, mid: 1, high: 2 });
    const seen = shares(picks(state, 20_000, { strategy: "power_of_two_choices" }));
    expect(Math.abs(seen.get("low")! - 2 / 3)).toBeLessThan(0.02);
    expect(Math.abs(seen.get("mid")! - 1 / 3)).toBeLessThan(0.02);
    expect(seen.has("high")).toBe(false);
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
