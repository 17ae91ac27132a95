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

/** Expects each id's share of `ids` within `tolerance` of `expected` (ids missing from `expected` must not occur). */
function expectShares(ids: readonly string[], expected: Record<string, number>, tolerance = 0.02): void {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  expect([...counts.keys()].filter((id) => !(id in expected))).toEqual([]);
  for (const [id, share] of Object.entries(expected)) expect(Math.abs((counts.get(id) ?? 0) / ids.length - share)).toBeLessThan(tolerance);
}

/** w1, w3 and w6 with weights 1, 3 and 6. */
function oneThreeSix(rng: () => number): RegistryState {
  return stateWith(
    [
      { instanceId: "w1", weight: 1 },
      { instanceId: "w3", weight: 3 },
      { instanceId: "w6", weight: 6 },
    ],
    rng,
  );
}

describe("weighted random", () => {
  it.each(["weighted_random", "power_of_two_choices"] as const)(
    "%s picks in proportion to weight at equal load (20,000 seeded picks over weights 1/3/6, within ±2 points)",
    (strategy) => {
      expectShares(picks(oneThreeSix(mulberry32(20_240_601)), 20_000, { strategy }), { w1: 0.1, w3: 0.3, w6: 0.6 });
    },
  );

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
  it.each(["weighted_random", "power_of_two_choices"] as const)(
    "%s gives a warming instance its ramped share at equal load (20,000 seeded picks, within ±2 points)",
    (strategy) => {
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
      expectShares(picks(state, 20_000, { strategy }), { a: 0.25, b: 0.25, c: 0.5 });
    },
  );

  it("gives a weight-1 instance 10% of its weight at the start of its warm-up, unrounded", () => {
    const state = stateWith(
      [
        { instanceId: "a", weight: 1 },
        { instanceId: "b", weight: 1 },
      ],
      mulberry32(5),
    );
    warmingUp(state, "a");
    expect(effectiveWeight(state.get("a")!)).toBe(0.1);
    expectShares(picks(state, 20_000, { strategy: "weighted_random" }), { a: 0.1 / 1.1, b: 1 / 1.1 }, 0.01);
  });

  it("least connections compares load per effective weight: a warming instance fills up 10× sooner", () => {
    const state = stateWith([
      { instanceId: "a", weight: 100 },
      { instanceId: "b", weight: 30 },
    ]);
    connections(state, { a: 1, b: 4 });
    // (1 + 1) / 100 < (4 + 1) / 30 ...
    expect(new Set(picks(state, 20, { strategy: "least_connections" }))).toEqual(new Set(["a"]));
    warmingUp(state, "a");
    // ... but (1 + 1) / 10 > (4 + 1) / 30.
    expect(new Set(picks(state, 20, { strategy: "least_connections" }))).toEqual(new Set(["b"]));
  });

  it("round robin gives a warming instance its reduced share: 10 : 1 : 50 over every 61 picks", () => {
    const state = stateWith([
      { instanceId: "a", weight: 100 },
      { instanceId: "b", weight: 1 },
      { instanceId: "c", weight: 50 },
    ]);
    warmingUp(state, "a");
    for (let cycle = 0; cycle < 3; cycle++) {
      const seen = picks(state, 61, { strategy: "round_robin" });
      expect([..."abc"].map((id) => seen.filter((pick) => pick === id).length)).toEqual([10, 1, 50]);
    }
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
    [0.05, 0.9, "a then c", "a"],
    [0.05, 0, "a then b", "a"],
    [0.5, 0, "c then a", "c"],
    [0.2, 0, "b then a", "b"],
    [0.2, 0.99, "b then c", "b"],
  ])("on equal connections takes the first drawn, whatever the weights (rng %d, %d: %s → %s)", (r1, r2, _, expected) => {
    const state = threeLoaded(sequence(r1, r2));
    connections(state, { a: 2, b: 2, c: 2 });
    expect(state.select({ serviceName: "checkout", strategy: "power_of_two_choices" })?.instance.instanceId).toBe(expected);
  });

  it("gives the instance with fewer connections every pick it is drawn into (20,000 seeded picks over 1/3/6, ±2 points)", () => {
    const state = oneThreeSix(mulberry32(20_240_603));
    connections(state, { w1: 0, w3: 1, w6: 1 });
    expectShares(picks(state, 20_000, { strategy: "power_of_two_choices" }), {
      // w1 is drawn first (0.1), or second after w3 (0.3 × 1/7) or after w6 (0.6 × 1/4) ...
      w1: 0.1 + 0.3 / 7 + 0.6 / 4,
      // ... and between the tied w3 and w6 the first drawn wins.
      w3: 0.3 * (6 / 7),
      w6: 0.6 * (3 / 4),
    });
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
    expectShares(picks(state, 20_000, { strategy: "power_of_two_choices" }), { low: 2 / 3, mid: 1 / 3 });
  });
});

describe("round robin", () => {
  it("cycles through routable instances in instance_id order, whatever the registration order", () => {
    const state = stateWith([{ instanceId: "c" }, { instanceId: "a" }, { instanceId: "b" }]);
    expect(picks(state, 7, { strategy: "round_robin" })).toEqual(["a", "b", "c", "a", "b", "c", "a"]);
  });

  it.each([
    [[1, 2, 3]],
    [[1, 2, 7]],
    [[5, 1, 1]],
    [[100, 1, 33]],
  ])("picks each instance exactly its weight times in every cycle of total-weight picks (weights %o)", (weights) => {
    const state = stateWith(weights.map((weight, i) => ({ instanceId: `w${i}`, weight })));
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    for (let cycle = 0; cycle < 3; cycle++) {
      const seen = picks(state, total, { strategy: "round_robin" });
      expect(weights.map((_, i) => seen.filter((id) => id === `w${i}`).length)).toEqual(weights);
    }
  });

  it("interleaves instead of bursting (nginx's smooth sequence for weights 5/1/1)", () => {
    const state = stateWith([
      { instanceId: "a", weight: 5 },
      { instanceId: "b", weight: 1 },
      { instanceId: "c", weight: 1 },
    ]);
    expect(picks(state, 14, { strategy: "round_robin" }).join("")).toBe("aabacaa".repeat(2));
  });

  it("keeps the state of current candidates only, and a returning instance starts afresh", () => {
    const rotations = new Map<string, Map<string, number>>();
    const state = stateWith([{ instanceId: "a" }, { instanceId: "b" }, { instanceId: "c" }]);
    const context = { rng: () => 0, rotations, key: "k" };
    const [a, b, c] = ["a", "b", "c"].map((id) => state.get(id)!);
    pickInstance("round_robin", [a!, b!, c!], context);
    expect([...rotations.get("k")!.keys()]).toEqual(["a", "b", "c"]);
    pickInstance("round_robin", [a!, c!], context);
    expect(Object.fromEntries(rotations.get("k")!)).toEqual({ a: -50, c: 0 });
    // b comes back from 0, not from the 50 it had when it left.
    expect(pickInstance("round_robin", [a!, b!, c!], context)?.instance.instanceId).toBe("b");
    expect(Object.fromEntries(rotations.get("k")!)).toEqual({ a: 0, b: -100, c: 50 });
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
    state.load(state.records(), false, t0);
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
    [{ a: 5, b: 2 }, "a"],
    [{ a: 6, b: 1 }, "b"],
    [{ a: 0, b: 0 }, "a"],
  ])("picks the lowest (connections + 1) / weight, so weight 30 takes 3× the connections of weight 10 (%o → %s)", (counts, expected) => {
    const state = stateWith(
      [
        { instanceId: "a", weight: 30 },
        { instanceId: "b", weight: 10 },
      ],
      sequence(0.9),
    );
    connections(state, counts);
    expect(state.select({ serviceName: "checkout", strategy: "least_connections" })?.instance.instanceId).toBe(expected);
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
    // Loads 401 / 100, 2 / 1 and 6 / 3: b and c tie.
    connections(state, { a: 400, b: 1, c: 5 });
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
    expect(pickInstance(strategy, [], { rng: () => 0, rotations: new Map(), key: "k" })).toBeUndefined();
  });
});
