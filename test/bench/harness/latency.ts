/**
 * Per-call latencies in nanoseconds, appended to a preallocated
 * `Float64Array` that doubles when full, so recording a call costs one store
 * and no allocation in the measured window.
 */
export class LatencyRecorder {
  private samples: Float64Array;
  private length = 0;

  /** @param capacity samples preallocated; the buffer doubles beyond it */
  constructor(capacity = 1 << 17) {
    this.samples = new Float64Array(capacity);
  }

  /** Number of samples recorded. */
  get count(): number {
    return this.length;
  }

  record(nanoseconds: number): void {
    if (this.length === this.samples.length) {
      const grown = new Float64Array(this.samples.length * 2);
      grown.set(this.samples);
      this.samples = grown;
    }
    this.samples[this.length++] = nanoseconds;
  }

  /** A copy of the recorded samples, sized to {@link count}. */
  snapshot(): Float64Array {
    return this.samples.slice(0, this.length);
  }
}

/**
 * The nearest-rank percentile `p` (0 < p ≤ 100) of `sorted` (ascending): the
 * smallest sample such that at least p% of the samples are ≤ it. NaN for no
 * samples.
 */
export function nearestRank(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

/** Concatenates sample arrays (one per load client) and sorts them ascending. */
export function mergeSorted(parts: readonly Float64Array[]): Float64Array {
  const merged = new Float64Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    merged.set(part, offset);
    offset += part.length;
  }
  return merged.sort();
}
