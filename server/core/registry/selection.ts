/**
 * Load-balancing strategies: each picks one record from a candidate list.
 * Randomness is injected (`rng`) and round-robin state is owned by the
 * caller, so a pick is a pure function of its inputs. Every weight read here
 * is the record's effective weight (`effectiveWeight`: the configured weight
 * scaled by the warm-up ramp), the same number xDS publishes as the
 * endpoint's load-balancing weight.
 */
import { effectiveWeight, type InstanceRecord } from "./model.js";

/** How {@link pickInstance} chooses among candidates. */
export type SelectionStrategy = "weighted_random" | "round_robin" | "least_connections" | "power_of_two_choices";

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
 * - `weighted_random`: probability proportional to effective weight.
 * - `round_robin`: the next candidate in turn for `context.key`; candidates
 *   must come sorted by instance_id so the rotation is stable. A plain
 *   rotation: weights (and so warm-up) do not apply, only routability does.
 * - `least_connections`: fewest active connections; ties are broken by
 *   effective-weighted random among the tied.
 * - `power_of_two_choices`: least-request over two random choices — draw two
 *   distinct candidates by effective-weighted random and take the one with
 *   fewer active connections; on a tie the higher effective weight, then the
 *   first drawn. Unlike least-connections it does not send every pick to the
 *   single least-loaded instance while connection counts lag behind.
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
    case "power_of_two_choices":
      return pickPowerOfTwoChoices(candidates, context.rng);
  }
}

/**
 * Walks the cumulative effective weights until they pass `rng() × total`,
 * skipping `exclude`. Effective weights are at least 1, so the total is
 * positive whenever a candidate is left; the last eligible candidate absorbs
 * floating point rounding at the top end.
 */
function pickWeightedRandom(candidates: readonly InstanceRecord[], rng: () => number, exclude?: InstanceRecord): InstanceRecord {
  let total = 0;
  for (const record of candidates) if (record !== exclude) total += effectiveWeight(record);
  const target = rng() * total;
  let cumulative = 0;
  let last = candidates[0]!;
  for (const record of candidates) {
    if (record === exclude) continue;
    last = record;
    cumulative += effectiveWeight(record);
    if (target < cumulative) return record;
  }
  return last;
}

/** Two distinct effective-weighted draws (one when there is one candidate); the less loaded wins (see {@link pickInstance}). */
function pickPowerOfTwoChoices(candidates: readonly InstanceRecord[], rng: () => number): InstanceRecord {
  const first = pickWeightedRandom(candidates, rng);
  if (candidates.length === 1) return first;
  const second = pickWeightedRandom(candidates, rng, first);
  if (second.activeConnections !== first.activeConnections) {
    return second.activeConnections < first.activeConnections ? second : first;
  }
  return effectiveWeight(second) > effectiveWeight(first) ? second : first;
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
