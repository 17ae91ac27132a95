/**
 * Noise cancellation, as Diffy does it. Some fields differ between two runs
 * of the *same* code (timestamps, random ids, map orderings): comparing
 * production with a second production sample (a "secondary", or a replay
 * against primary) measures that noise per field. A field's differences
 * between production and the shadow ("candidate") count only when they
 * clearly exceed its noise.
 *
 * For a field with `c` candidate diffs and `n` noise diffs over `N` compared
 * requests (Diffy's `DifferencesFilterFactory` and `JoinedField`):
 * - relative difference = |c − n| / (c + n)
 * - absolute difference = |c − n| / N
 * - the field is reported when c > n, relative > `relative` (default 0.20)
 *   and absolute > `absolute` (default 0.0003, i.e. 0.03% of requests).
 *
 * Thresholds are fractions (Diffy's are percentages: 20.0 and 0.03). Both
 * comparisons are strict, so a field exactly at a threshold is not reported.
 */
import { InvalidFieldError } from "../errors.js";

/** The two noise-cancellation thresholds, as fractions. */
export interface NoiseThresholds {
  /** Minimum relative difference |c − n| / (c + n), exclusive. */
  readonly relative: number;
  /** Minimum absolute difference |c − n| / requests, exclusive. */
  readonly absolute: number;
}

/** Diffy's defaults: relative 20%, absolute 0.03% of requests. */
export const defaultNoiseThresholds: NoiseThresholds = { relative: 0.2, absolute: 0.0003 };

/** A field's diff counts over a set of compared requests. */
export interface FieldDiffCounts {
  /** Requests where production and shadow differed in the field. */
  readonly candidateDiffs: number;
  /** Requests where production and the secondary differed in the field. */
  readonly noiseDiffs: number;
}

/**
 * What a field's counts say: `reported` (a real difference), `noise` (its
 * diffs are explained by production's own non-determinism) or
 * `insignificant` (no noise seen, but too rare to report).
 */
export type FieldVerdict = "reported" | "noise" | "insignificant";

/** The classification of one field. */
export interface FieldSignal {
  /** |c − n| / (c + n); 0 when both are 0. */
  readonly relativeDifference: number;
  /** |c − n| / requests; 0 without requests. */
  readonly absoluteDifference: number;
  readonly verdict: FieldVerdict;
}

/**
 * Classifies a field's counts over `requests` compared requests (see the
 * module comment). A field that is not reported is `noise` when its noise
 * count is positive, else `insignificant`.
 */
export function classifyField(
  counts: FieldDiffCounts,
  requests: number,
  thresholds: NoiseThresholds = defaultNoiseThresholds,
): FieldSignal {
  const { candidateDiffs: c, noiseDiffs: n } = counts;
  const gap = Math.abs(c - n);
  const relativeDifference = c + n === 0 ? 0 : gap / (c + n);
  const absoluteDifference = requests === 0 ? 0 : gap / requests;
  const reported = c > n && relativeDifference > thresholds.relative && absoluteDifference > thresholds.absolute;
  return {
    relativeDifference,
    absoluteDifference,
    verdict: reported ? "reported" : n > 0 ? "noise" : "insignificant",
  };
}

/**
 * Noise thresholds from a request, with the defaults for what it leaves
 * unset.
 *
 * @throws InvalidFieldError naming `${fieldPrefix}relative` or
 *   `${fieldPrefix}absolute` when a value is outside [0, 1]
 */
export function resolveNoiseThresholds(
  input: Partial<NoiseThresholds> = {},
  fieldPrefix = "noise_",
): NoiseThresholds {
  const relative = input.relative ?? defaultNoiseThresholds.relative;
  const absolute = input.absolute ?? defaultNoiseThresholds.absolute;
  checkFraction(relative, `${fieldPrefix}relative`);
  checkFraction(absolute, `${fieldPrefix}absolute`);
  return { relative, absolute };
}

/**
 * Checks a share: a finite number in [0, 1].
 *
 * @throws InvalidFieldError naming `field`
 */
export function checkFraction(value: number, field: string): void {
  if (!(value >= 0 && value <= 1)) throw new InvalidFieldError(field, `must be in [0, 1], got ${value}`);
}
