/**
 * Pacing of a REPLAY run: captured requests are re-sent with the gaps they
 * arrived with, divided by a rate multiplier (GoReplay's `--input-file` with
 * a speed percentage: 2 replays twice as fast, 0.5 at half speed,
 * `Infinity` as fast as possible).
 *
 * Steps, for requests in capture order (oldest first):
 * 1. the first request is sent at offset 0;
 * 2. each gap is `max(0, t[i] − t[i−1]) / multiplier` (a timestamp earlier
 *    than its predecessor, from a skewed clock, adds no wait and never
 *    reorders);
 * 3. a gap longer than `maxWaitMs` is cut to it (GoReplay's
 *    `--input-file-max-wait`), so idle hours are not replayed;
 * 4. offsets are the running sums, rounded to whole milliseconds at the end
 *    (rounding never accumulates).
 */
import { InvalidFieldError } from "../errors.js";

/** Largest rate multiplier accepted. */
export const maxRateMultiplier = 1000;

/** Options of {@link replayOffsets}. */
export interface ReplayOptions {
  /** Longest wait between two sends after scaling; unlimited when absent. */
  readonly maxWaitMs?: number;
}

/**
 * Send offsets (ms after the replay starts) for requests captured at
 * `capturedAtMs`, in capture order (see the module comment).
 */
export function replayOffsets(
  capturedAtMs: readonly number[],
  rateMultiplier: number,
  options: ReplayOptions = {},
): number[] {
  const maxWaitMs = options.maxWaitMs ?? Number.POSITIVE_INFINITY;
  const offsets: number[] = [];
  let at = 0;
  for (let i = 0; i < capturedAtMs.length; i++) {
    if (i > 0) {
      const gap = Math.max(0, capturedAtMs[i]! - capturedAtMs[i - 1]!) / rateMultiplier;
      at += Math.min(gap, maxWaitMs);
    }
    offsets.push(Math.round(at));
  }
  return offsets;
}

/**
 * How many of `offsets` (ascending) are due `elapsedMs` after the replay
 * started: the number of offsets ≤ elapsedMs.
 */
export function dueCount(offsets: readonly number[], elapsedMs: number): number {
  let low = 0;
  let high = offsets.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (offsets[middle]! <= elapsedMs) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * A request's rate multiplier: unset (0 or undefined, as proto3 cannot tell
 * them apart) is `Infinity`, as fast as possible: every offset is 0.
 *
 * @throws InvalidFieldError naming `field` when it is not in (0, 1000]
 */
export function resolveRateMultiplier(rateMultiplier: number | undefined, field = "rate_multiplier"): number {
  if (rateMultiplier === undefined || rateMultiplier === 0) return Number.POSITIVE_INFINITY;
  if (!(rateMultiplier > 0 && rateMultiplier <= maxRateMultiplier)) {
    throw new InvalidFieldError(field, `must be in (0, ${maxRateMultiplier}], got ${rateMultiplier}`);
  }
  return rateMultiplier;
}
