/**
 * Load-balancing strategies: each picks one record from a candidate list.
 * Randomness is injected (`rng`) and round-robin state is owned by the
 * caller, so a pick is a pure function of its inputs.
 */
import type { InstanceRecord } from "./model.js";

/** How {@link pickInstance} chooses among candidates. */
export type SelectionStrategy = "weighted_random" | "round_robin" | "least_connections";

/** What a pick may read or advance besides the candidates. */
export interface SelectionContext {
  /** Uniform random numbers in [0, 1). */
  readonly rng: () => number;
  /** Round-robin position per key; advanced by each round-robin pick. */
  readonly counters: Map<string, number>;
  /** The round-robin key of this pick (one rotation per key). */
  readonly key: string;
}

/**
 * Picks one of `candidates`, or undefined when there are none.
 * - `weighted_random`: probability proportional to weight.
 * - `round_robin`: the next candidate in turn for `context.key`; candidates
 *   must come sorted by instance_id so the rotation is stable.
 * - `least_connections`: fewest active connections; ties are broken by
 *   weighted random among the tied.
 */
export function pickInstance(
  strategy: SelectionStrategy,
  candidates: readonly InstanceRecord[],
  context: SelectionContext,
): InstanceRecord | undefined {
  if (candidates.length === 0) return undefined;
  switch (strategy) {
    case "weighted_random":
      return pickWeightedRandom(candidates, context.rng);
    case "round_robin":
      return pickRoundRobin(candidates, context.counters, context.key);
    case "least_connections":
      return pickWeightedRandom(fewestConnections(candidates), context.rng);
  }
}

/**
 * Walks the cumulative weights until they pass `rng() × total`. Weights are
 * at least 1, so the total is positive; the last candidate absorbs floating
 * point rounding at the top end.
 */
function pickWeightedRandom(candidates: readonly InstanceRecord[], rng: () => number): InstanceRecord {
  let total = 0;
  for (const record of candidates) total += record.instance.weight;
  const target = rng() * total;
  let cumulative = 0;
  for (const record of candidates) {
    cumulative += record.instance.weight;
    if (target < cumulative) return record;
  }
  return candidates[candidates.length - 1]!;
}

/**
 * Takes the candidate at the key's position (modulo the current count) and
 * stores the next position, kept below the count so it never grows.
 */
function pickRoundRobin(
  candidates: readonly InstanceRecord[],
  counters: Map<string, number>,
  key: string,
): InstanceRecord {
  const index = (counters.get(key) ?? 0) % candidates.length;
  counters.set(key, (index + 1) % candidates.length);
  return candidates[index]!;
}

function fewestConnections(candidates: readonly InstanceRecord[]): InstanceRecord[] {
  let least = Infinity;
  let tied: InstanceRecord[] = [];
  for (const record of candidates) {
    if (record.activeConnections < least) {
      least = record.activeConnections;
      tied = [record];
    } else if (record.activeConnections === least) {
      tied.push(record);
    }
  }
  return tied;
}
