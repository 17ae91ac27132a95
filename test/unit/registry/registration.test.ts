import { describe, expect, it } from "vitest";
import { AlreadyExistsError, LimitExceededError, NotFoundError } from "../../../server/core/errors.js";
import { commit, ids, instanceInput, newState, register, t0, thrown } from "./builders.js";

describe("register", () => {
  it("plans an added event with a fresh, healthy record stamped now", () => {
    const state = newState();
    const change = state.planRegister(instanceInput({ instanceId: "a" }), t0);
    expect(change.quiet).toEqual([]);
    expect(change.events).toHaveLength(1);
    const [event] = change.events;
    expect(event!.kind).toBe("added");
    expect(event!.reason).toBeUndefined();
    expect(event!.record).toEqual({
      instance: { ...instanceInput({ instanceId: "a" }), registeredAtMs: t0, lastHeartbeatMs: t0 },
      healthy: true,
      stale: false,
      activeConnections: 0,
      score: { value: 1, signal: 1, atMs: t0 },
      degraded: false,
    });
  });

  it("makes the instance visible once applied", () => {
    const state = newState();
    const [record] = register(state, [instanceInput({ instanceId: "a" })]);
    expect(state.get("a")).toBe(record);
    expect(state.size).toBe(1);
    expect(ids(state.resolve({ serviceName: "checkout", healthyOnly: true, minWeight: 0 }))).toEqual(["a"]);
  });

  it("copies the metadata, so later changes to the caller's object do not reach the record", () => {
    const state = newState();
    const metadata: Record<string, string> = { version: "1" };
    register(state, [instanceInput({ instanceId: "a", metadata })]);
    metadata.version = "2";
    expect(state.get("a")!.instance.metadata).toEqual({ version: "1" });
  });

  it.each([
    ["in the same service", "checkout"],
    ["in another service", "payments"],
  ])("rejects a duplicate instance_id %s with AlreadyExistsError naming it", (_, serviceName) => {
    const state = newState();
    register(state, [instanceInput({ instanceId: "dup-1" })]);
    const error = thrown(() => state.planRegister(instanceInput({ instanceId: "dup-1", serviceName }), t0));
    expect(error).toBeInstanceOf(AlreadyExistsError);
    expect(error.message).toContain('"dup-1"');
    expect(state.size).toBe(1);
  });

  it("rejects the instance past maxInstancesPerService with LimitExceededError naming the service and the limit", () => {
    const state = newState({ maxInstancesPerService: 2 });
    register(state, [instanceInput({ instanceId: "a" }), instanceInput({ instanceId: "b" })]);
    const error = thrown(() => state.planRegister(instanceInput({ instanceId: "c" }), t0));
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error.message).toContain('"checkout"');
    expect(error.message).toContain("2");
  });

  it("counts the per-service limit per service", () => {
    const state = newState({ maxInstancesPerService: 1 });
    register(state, [instanceInput({ instanceId: "a" })]);
    expect(() => state.planRegister(instanceInput({ instanceId: "b", serviceName: "payments" }), t0)).not.toThrow();
  });

  it("frees a slot under the limit when an instance is deregistered", () => {
    const state = newState({ maxInstancesPerService: 1 });
    register(state, [instanceInput({ instanceId: "a" })]);
    commit(state, state.planDeregister("a"));
    expect(() => state.planRegister(instanceInput({ instanceId: "b" }), t0)).not.toThrow();
  });
});

describe("bulk register", () => {
  it("registers every valid input in one change, with a result each", () => {
    const state = newState();
    const inputs = ["a", "b", "c"].map((instanceId) => instanceInput({ instanceId }));
    const { results, change } = state.planBulkRegister(inputs, false, t0);
    expect(results).toEqual(["a", "b", "c"].map((instanceId) => ({ instanceId, registered: true })));
    expect(change.events.map((e) => [e.kind, e.record.instance.instanceId])).toEqual([
      ["added", "a"],
      ["added", "b"],
      ["added", "c"],
    ]);
    state.apply(change);
    expect(state.size).toBe(3);
  });

  it("fails the second of two inputs with the same instance_id and keeps the first", () => {
    const state = newState();
    const inputs = [instanceInput({ instanceId: "x" }), instanceInput({ instanceId: "x", endpoint: "10.0.0.9:80" })];
    const { results, change } = state.planBulkRegister(inputs, false, t0);
    expect(results[0]).toEqual({ instanceId: "x", registered: true });
    expect(results[1]!.registered).toBe(false);
    expect(results[1]!.error).toMatch(/"x" is already registered/);
    state.apply(change);
    expect(state.get("x")!.instance.endpoint).toBe("10.0.1.5:8080");
  });

  it("fails an input whose instance_id is already registered", () => {
    const state = newState();
    register(state, [instanceInput({ instanceId: "x" })]);
    const { results } = state.planBulkRegister([instanceInput({ instanceId: "x" })], false, t0);
    expect(results).toEqual([{ instanceId: "x", registered: false, error: expect.stringContaining('"x"') }]);
  });

  it("counts earlier inputs of the same bulk toward the per-service limit", () => {
    const state = newState({ maxInstancesPerService: 3 });
    register(state, [instanceInput({ instanceId: "a" })]);
    const inputs = ["b", "c", "d"].map((instanceId) => instanceInput({ instanceId }));
    const { results } = state.planBulkRegister(inputs, false, t0);
    expect(results.map((r) => r.registered)).toEqual([true, true, false]);
    expect(results[2]!.error).toMatch(/"checkout" has reached its limit of 3/);
  });

  it.each([
    [true, [true, false, false], ["", "already registered", ""]],
    [false, [true, false, true], ["", "already registered", ""]],
  ])("with fail_fast=%s, stops or continues after the first failure", (failFast, registered, errors) => {
    const state = newState();
    register(state, [instanceInput({ instanceId: "taken" })]);
    const inputs = ["a", "taken", "c"].map((instanceId) => instanceInput({ instanceId }));
    const { results, change } = state.planBulkRegister(inputs, failFast, t0);
    expect(results.map((r) => r.registered)).toEqual(registered);
    results.forEach((result, i) => {
      if (errors[i] === "") expect(result.error).toBeUndefined();
      else expect(result.error).toContain(errors[i]);
    });
    expect(change.events).toHaveLength(registered.filter(Boolean).length);
  });

  it("plans nothing for an empty bulk", () => {
    const { results, change } = newState().planBulkRegister([], true, t0);
    expect(results).toEqual([]);
    expect(change).toEqual({ events: [], quiet: [] });
  });
});

describe("deregister", () => {
  it("plans a removed event with the last state and reason deregistered", () => {
    const state = newState();
    const [record] = register(state, [instanceInput({ instanceId: "a" })]);
    const change = state.planDeregister("a");
    expect(change).toEqual({ events: [{ kind: "removed", record, reason: "deregistered" }], quiet: [] });
    expect(change.events[0]!.record).toBe(record);
  });

  it("removes the instance from every index once applied", () => {
    const state = newState();
    register(state, [instanceInput({ instanceId: "a" }), instanceInput({ instanceId: "b", serviceName: "payments" })]);
    commit(state, state.planDeregister("a"));
    expect(state.get("a")).toBeUndefined();
    expect(state.size).toBe(1);
    expect(state.resolve({ serviceName: "checkout", healthyOnly: false, minWeight: 0 })).toEqual([]);
    expect([...state.topology().keys()]).toEqual(["payments"]);
    expect(ids(state.records())).toEqual(["b"]);
  });

  it("rejects an unknown instance with NotFoundError naming it", () => {
    const error = thrown(() => newState().planDeregister("ghost"));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message).toContain('"ghost"');
  });
});
