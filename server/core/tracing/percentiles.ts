/**
 * Nearest-rank percentiles (the seed's `service_latency_percentiles`).
 *
 * The p-th percentile of N sorted values is the value at 1-based rank
 * `ceil(p / 100 × N)`: always one of the values, never an interpolation, so
 * over 1..100 the 50th is 50, the 90th 90 and the 99th 99, and over a single
 * value every percentile is that value.
 */
import { InvalidFieldError } from "../errors.js";

/** The seed's default percentiles. */
export const defaultPercentiles: readonly number[] = [50, 90, 95, 99];

/** One requested percentile and its value. */
export interface PercentileValue {
  readonly percentile: number;
  readonly value: number;
}

/**
 * Checks requested percentiles: each a finite number with 0 < p ≤ 100
 * (fractions such as 99.9 are allowed; 0 has no nearest rank).
 *
 * @param field the request field, e.g. `percentiles`; an entry is named `percentiles[2]`
 * @throws InvalidFieldError naming the first bad entry
 */
export function validatePercentiles(percentiles: readonly number[], field = "percentiles"): void {
  percentiles.forEach((p, i) => {
    if (!Number.isFinite(p) || p <= 0 || p > 100) {
      throw new InvalidFieldError(`${field}[${i}]`, `must be > 0 and <= 100, got ${p}`);
    }
  });
}

/**
 * The 1-based nearest rank of percentile `p` among `count` values, in
 * 1..count. Computed as `p × count / 100` (product first, so integer `p`
 * and `count` give an exact quotient) with a 1e-9 tolerance before the
 * ceiling, so that 99.9 % of 1000 is rank 999, not 1000.
 */
export function nearestRank(p: number, count: number): number {
  const rank = Math.ceil((p * count) / 100 - 1e-9);
  return Math.min(Math.max(rank, 1), count);
}

/**
 * The nearest-rank percentiles of `values`, one entry per requested
 * percentile in request order. No values → no entries (there is nothing to
 * rank); the request is validated either way.
 *
 * @param values any order; not modified
 * @throws InvalidFieldError for an invalid percentile (see {@link validatePercentiles})
 */
export function percentiles(
  values: readonly number[],
  requested: readonly number[] = defaultPercentiles,
): PercentileValue[] {
  validatePercentiles(requested);
  if (values.length === 0) return [];
  const sorted = Float64Array.from(values).sort();
  return requested.map((percentile) => ({ percentile, value: sorted[nearestRank(percentile, sorted.length) - 1]! }));
}
