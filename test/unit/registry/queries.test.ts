import { describe, expect, it } from "vitest";
import type { InstanceInput } from "../../../server/core/registry/model.js";
import type { RegistryState } from "../../../server/core/registry/registry-state.js";
import { healthInput, ids, instanceInput, newState, reap, register, reportHealth, t0 } from "./builders.js";

const timeout = 30_000;

/**
 * checkout: eu-1 (w50, eu-west), eu-2 (w80, eu-west, unhealthy), us-1 (w80, us-east),
 * us-2 (w10, us-east, stale), ap-1 (w50, ap-south); payments: pay-1 (w100, eu-west).
 */
function mesh(): RegistryState {
  const state = newState({ heartbeatTimeoutMs: timeout, deregisterStaleAfterMs: 0 });
  const specs: Partial<InstanceInput>[] = [
    { instanceId: "us-2", region: "us-east", weight: 10 },
    { instanceId: "eu-2", region: "eu-west", weight: 80 },
    { instanceId: "eu-1", region: "eu-west", weight: 50 },
    { instanceId: "us-1", region: "us-east", weight: 80 },
    { instanceId: "ap-1", region: "ap-south", weight: 50 },
    { instanceId: "pay-1", serviceName: "payments", region: "eu-west", weight: 100 },
  ];
  register(state, specs.map((spec) => instanceInput(spec)));
  reportHealth(state, healthInput("eu-2", { healthy: false, consecutiveFailures: 1 }));
  for (const id of ["eu-1", "eu-2", "us-1", "ap-1", "pay-1"]) {
    state.apply(state.planHeartbeat(id, undefined, t0 + timeout));
  }
  reap(state, t0 + timeout + 1);
  return state;
}

describe("resolve", () => {
  it.each<[string, { region?: string; healthyOnly: boolean; minWeight: number }, string[]]>([
    ["routable instances by weight desc, then instance_id", { healthyOnly: true, minWeight: 0 }, ["us-1", "ap-1", "eu-1"]],
    ["every instance, stale and unhealthy included, when healthy_only is false", { healthyOnly: false, minWeight: 0 }, ["eu-2", "us-1", "ap-1", "eu-1", "us-2"]],
    ["only the region's instances (a strict filter)", { region: "eu-west", healthyOnly: false, minWeight: 0 }, ["eu-2", "eu-1"]],
    ["only routable ones of the region", { region: "eu-west", healthyOnly: true, minWeight: 0 }, ["eu-1"]],
    ["nothing for a region without instances (no fallback)", { region: "sa-east", healthyOnly: false, minWeight: 0 }, []],
    ["instances of at least min_weight, inclusive", { healthyOnly: false, minWeight: 50 }, ["eu-2", "us-1", "ap-1", "eu-1"]],
    ["instances of at least min_weight, excluding lighter ones", { healthyOnly: false, minWeight: 51 }, ["eu-2", "us-1"]],
  ])("lists %s", (_, query, expected) => {
    expect(ids(mesh().resolve({ serviceName: "checkout", ...query }))).toEqual(expected);
  });

  it("lists nothing for an unknown service", () => {
    expect(mesh().resolve({ serviceName: "nope", healthyOnly: false, minWeight: 0 })).toEqual([]);
  });

  it("never lists another service's instances", () => {
    expect(ids(mesh().resolve({ serviceName: "payments", healthyOnly: false, minWeight: 0 }))).toEqual(["pay-1"]);
  });

  it("orders equal weights by instance_id in code-unit order, not locale order", () => {
    const state = newState();
    register(state, ["b", "a", "B", "a1"].map((instanceId) => instanceInput({ instanceId })));
    expect(ids(state.resolve({ serviceName: "checkout", healthyOnly: true, minWeight: 0 }))).toEqual(["B", "a", "a1", "b"]);
  });
});

describe("failover candidates", () => {
  it.each<[string[], string[]]>([
    [["eu-west"], ["us-1", "ap-1"]],
    [["eu-west", "us-east"], ["ap-1"]],
    [[], ["us-1", "ap-1", "eu-1"]],
    [["eu-west", "us-east", "ap-south"], []],
  ])("excluding %o lists the routable rest by weight, then id: %o", (exclude, expected) => {
    expect(ids(mesh().failoverCandidates("checkout", exclude))).toEqual(expected);
  });

  it("lists nothing for an unknown service", () => {
    expect(mesh().failoverCandidates("nope", [])).toEqual([]);
  });
});

describe("topology", () => {
  it("counts instances and routable instances per service and region, in name order", () => {
    const topology = mesh().topology();
    expect([...topology.keys()]).toEqual(["checkout", "payments"]);
    expect([...topology.get("checkout")!]).toEqual([
      ["ap-south", { instances: 1, healthy: 1 }],
      ["eu-west", { instances: 2, healthy: 1 }],
      ["us-east", { instances: 2, healthy: 1 }],
    ]);
    expect([...topology.get("payments")!]).toEqual([["eu-west", { instances: 1, healthy: 1 }]]);
  });

  it("is empty for an empty registry", () => {
    expect(newState().topology().size).toBe(0);
  });
});

describe("stale instances", () => {
  it("lists stale instances of all services, by service then id", () => {
    const state = mesh();
    state.apply(state.planReap(t0 + 2 * timeout + 2).change);
    expect(state.staleInstances().map((r) => `${r.instance.serviceName}/${r.instance.instanceId}`)).toEqual([
      "checkout/ap-1",
      "checkout/eu-1",
      "checkout/eu-2",
      "checkout/us-1",
      "checkout/us-2",
      "payments/pay-1",
    ]);
  });

  it.each([
    ["checkout", ["us-2"]],
    ["payments", []],
    ["nope", []],
  ])("lists only the stale instances of %s", (service, expected) => {
    expect(ids(mesh().staleInstances(service))).toEqual(expected);
  });
});

describe("records (snapshots)", () => {
  it("lists every record by service, then instance_id", () => {
    expect(ids(mesh().records())).toEqual(["ap-1", "eu-1", "eu-2", "us-1", "us-2", "pay-1"]);
  });

  it("lists only the named services, ignoring unknown names", () => {
    expect(ids(mesh().records(new Set(["payments", "nope"])))).toEqual(["pay-1"]);
  });

  it("round-trips through load into an equal state", () => {
    const source = mesh();
    const copy = newState();
    copy.load(source.records(), false, t0);
    expect(copy.records()).toEqual(source.records());
    expect(copy.topology()).toEqual(source.topology());
    expect(copy.get("eu-2")).toBe(source.get("eu-2"));
  });

  it("load replaces what was there before", () => {
    const state = mesh();
    state.load([], false, t0);
    expect(state.size).toBe(0);
    expect(state.topology().size).toBe(0);
    expect(state.resolve({ serviceName: "checkout", healthyOnly: false, minWeight: 0 })).toEqual([]);
  });
});
