import type { DomainError } from "../../../server/core/errors.js";
import {
  defaultRegistryLimits,
  type HealthInput,
  type InstanceInput,
  type InstanceRecord,
  type RegistryChange,
  type RegistryLimits,
} from "../../../server/core/registry/model.js";
import { defaultHealthScoring, type HealthScoring } from "../../../server/core/registry/health-score.js";
import { RegistryState } from "../../../server/core/registry/registry-state.js";

/** An arbitrary fixed "now" for tests, in epoch milliseconds. */
export const t0 = 1_700_000_000_000;

/**
 * mulberry32: a tiny deterministic PRNG with uniform output in [0, 1), so
 * statistical tests are reproducible.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A random source that returns `values` in turn, then repeats the last one. */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

/** A valid instance input; override any field. */
export function instanceInput(overrides: Partial<InstanceInput> = {}): InstanceInput {
  return {
    instanceId: "inst-1",
    serviceName: "checkout",
    endpoint: "10.0.1.5:8080",
    region: "eu-west",
    zone: "eu-west-1a",
    weight: 50,
    metadata: { version: "1.0.0" },
    ...overrides,
  };
}

/** A valid health input for `instanceId`; override any field. */
export function healthInput(instanceId: string, overrides: Partial<HealthInput> = {}): HealthInput {
  return { instanceId, healthy: true, latencyMs: 5, consecutiveFailures: 0, ...overrides };
}

/** A state with the given limit and health-scoring overrides and random source. */
export function newState(
  limits: Partial<RegistryLimits> = {},
  rng: () => number = mulberry32(1),
  scoring: Partial<HealthScoring> = {},
): RegistryState {
  return new RegistryState(defaultRegistryLimits(limits), rng, defaultHealthScoring(scoring));
}

/** Applies `change` to `state` and returns it. */
export function commit<C extends RegistryChange>(state: RegistryState, change: C): C {
  state.apply(change);
  return change;
}

/** Registers (plan + apply) each input at `nowMs`, returning the new records. */
export function register(state: RegistryState, inputs: readonly InstanceInput[], nowMs = t0): InstanceRecord[] {
  return inputs.map((input) => commit(state, state.planRegister(input, nowMs)).events[0]!.record);
}

/** Records a health result (plan + apply). */
export function reportHealth(state: RegistryState, input: HealthInput, nowMs = t0): void {
  state.apply(state.planHealthUpdate(input, nowMs));
}

/** Marks stale every instance silent at `nowMs` (plan + apply one staleness pass). */
export function reap(state: RegistryState, nowMs: number): RegistryChange {
  return commit(state, state.planReap(nowMs).change);
}

/** The error `fn` throws; fails the test when it throws nothing. */
export function thrown(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (error) {
    return error as DomainError;
  }
  throw new Error("expected an error, got none");
}

/** The instance ids of `records`, in order. */
export function ids(records: readonly InstanceRecord[]): string[] {
  return records.map((record) => record.instance.instanceId);
}
