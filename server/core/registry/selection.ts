/**
 * Load-balancing strategies: each picks one record from a candidate list.
 * Randomness is injected (`rng`) and round-robin state is owned by the
 * caller, so a pick is a pure function of its inputs. Every weight read here
 * is the record's effective weight (`effectiveWeight`: the configured weight
 * scaled by the warm-up ramp, unrounded), the same number xDS turns into the
 * endpoint's load-balancing weight — so every strategy honours warm-up.
 */
import { effectiveWeight, type InstanceRecord } from "./model.js";

/** How {@link pickInstance} chooses among candidates. */
export type SelectionStrategy = "weighted_random" | "round_robin" | "least_connections" | "power_of_two_choices";

/**
 * Smooth weighted round-robin state: per rotation key, the current weight
 * of each candidate by instance_id. Holds only the candidates of the key's
 * latest pick.
 */
export type Rotations = Map<string, Map<string, number>>;

/** What a pick may read or advance besides the candidates. */
export interface SelectionContext {
  /** Uniform random numbers in [0, 1). */
  readonly rng: () => number;
  /** Round-robin state per key; advanced by each round-robin pick. */
  readonly rotations: Rotations;
  /** The round-robin key of this pick (one rotation per key). */
  readonly key: string;
}

/**
 * Picks one of `candidates`, or undefined when there are none.
 * - `weighted_random`: probability proportional to effective weight.
 * - `round_robin`: smooth weighted round robin (nginx's) for `context.key`:
 *   over any run of picks each candidate's share follows its effective
 *   weight as closely as whole picks allow, interleaved rather than in
 *   bursts; with equal weights a plain rotation. Candidates must come sorted
 *   by instance_id, which breaks ties, so the rotation is stable.
 * - `least_connections`: the lowest `(activeConnections + 1) / effective
 *   weight` (Envoy's weighted least-request), so an instance with twice the
 *   weight is given about twice the connections; ties are broken by
 *   effective-weighted random among the tied.
 * - `power_of_two_choices`: least-request over two random choices — draw two
 *   distinct candidates by effective-weighted random and take the one with
 *   fewer active connections; on a tie the first drawn. At equal load that
 *   is exactly `weighted_random` (the first draw decides), so light and
 *   warming instances keep their share; unlike least-connections it does
 *   not send every pick to the single least-loaded instance while
 *   connection counts lag behind.
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
      return pickRoundRobin(candidates, context.rotations, context.key);
    case "least_connections":
      return pickWeightedRandom(leastLoaded(candidates), context.rng);
    case "power_of_two_choices":
      return pickPowerOfTwoChoices(candidates, context.rng);
  }
}

/**
 * Walks the cumulative effective weights until they pass `rng() × total`,
 * skipping `exclude`. Effective weights are positive, so the total is
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

/** Two distinct effective-weighted draws (one when there is one candidate); fewer connections wins, a tie goes to the first drawn. */
function pickPowerOfTwoChoices(candidates: readonly InstanceRecord[], rng: () => number): InstanceRecord {
  const first = pickWeightedRandom(candidates, rng);
  if (candidates.length === 1) return first;
  const second = pickWeightedRandom(candidates, rng, first);
  return second.activeConnections < first.activeConnections ? second : first;
}

/**
 * Smooth weighted round robin, one step for `key`:
 * 1. every candidate's current weight grows by its effective weight (a
 *    candidate new to the rotation starts from 0);
 * 2. the candidate with the highest current weight is picked (the first in
 *    candidate order on a tie);
 * 3. the picked one's current weight drops by the total effective weight.
 * While the candidates and their weights stay the same, the current weights
 * sum to 0 after every pick, and with whole weights the picks repeat every
 * `total` picks, each candidate picked exactly its weight times per cycle.
 * State of instances that are no longer candidates (deregistered, not
 * routable, outside the region) is dropped, so it stays bounded by the
 * candidates; one that comes back starts from 0 again.
 */
function pickRoundRobin(candidates: readonly InstanceRecord[], rotations: Rotations, key: string): InstanceRecord {
  let current = rotations.get(key);
  if (current === undefined) {
    current = new Map();
    rotations.set(key, current);
  }
  let total = 0;
  let picked = candidates[0]!;
  let highest = -Infinity;
  for (const record of candidates) {
    const weight = effectiveWeight(record);
    const { instanceId } = record.instance;
    const value = (current.get(instanceId) ?? 0) + weight;
    current.set(instanceId, value);
    total += weight;
    if (value > highest) {
      highest = value;
      picked = record;
    }
  }
  current.set(picked.instance.instanceId, highest - total);
  // Every candidate is in the map now, so anything beyond their count is left over from earlier picks.
  if (current.size > candidates.length) {
    const ids = new Set(candidates.map((record) => record.instance.instanceId));
    for (const instanceId of current.keys()) if (!ids.has(instanceId)) current.delete(instanceId);
  }
  return picked;
}

/** The candidates with the lowest `(activeConnections + 1) / effective weight` (see {@link pickInstance}). */
function leastLoaded(candidates: readonly InstanceRecord[]): InstanceRecord[] {
  let least = Infinity;
  let tied: InstanceRecord[] = [];
  for (const record of candidates) {
    const load = (record.activeConnections + 1) / effectiveWeight(record);
    if (load < least) {
      least = load;
      tied = [record];
    } else if (load === least) {
      tied.push(record);
    }
  }
  return tied;
}
