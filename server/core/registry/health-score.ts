/**
 * Health scoring and warm-up: the arithmetic behind health-aware routing.
 * Pure functions of their arguments; times are epoch milliseconds and the
 * clock is always passed in.
 *
 * **Score.** Each instance has an instantaneous signal `v` in [0, 1]:
 * `v = h × l`, where `h` comes from its latest health check (`healthy ?
 * min(1, latencyTargetMs / max(latencyMs, 1)) : 0`; 1 before any check) and
 * `l` is 0 while the instance is stale, 1 otherwise. The score is the
 * continuous-time exponentially weighted moving average of that
 * piecewise-constant signal with time constant τ = the health window:
 *
 *     s(t) = v + (s0 − v) · exp(−(t − t0) / τ)
 *
 * evaluated from the stored triple (s0 = `value`, v = `signal`, t0 = `atMs`).
 * A new observation first advances the score to now with the old signal,
 * then stores the new signal. Because the average weighs *time*, not
 * samples, it is rate-independent: a hundred heartbeats between two health
 * checks leave the score exactly where one would (heartbeats do not carry a
 * signal of their own; they only end staleness), and re-anchoring the triple
 * at any moment does not change any later value. After one window a step in
 * the signal has moved the score 63% of the way, after three windows 95%.
 *
 * **Degraded.** A score below {@link degradedScoreThreshold} takes the
 * instance out of routing whatever its other state says.
 *
 * **Warm-up.** An instance that becomes routable again warms up for a
 * configured period: its weight is scaled by an exponential ramp from 10% to
 * 100%, quantised into {@link warmupSteps} steps so that every reader (selection,
 * xDS, a restarted server) sees the same value for the same stored step. The
 * scaled weight is not rounded: a weight-1 instance really gets 0.1 at step 0.
 */

/** A score below this is degraded: the instance is not routable. */
export const degradedScoreThreshold = 0.3;

/** Quantisation of the warm-up ramp: the weight changes this many times in one warm-up. */
export const warmupSteps = 10;

/** The share of its weight an instance gets at the start of a warm-up. */
export const warmupStartFactor = 0.1;

/** The EWMA state of an instance's health: see the module comment. */
export interface HealthScore {
  /** The score at `atMs`, in [0, 1]. */
  readonly value: number;
  /** The instantaneous signal in force since `atMs`, in [0, 1]. */
  readonly signal: number;
  /** When `value` was evaluated and `signal` began. */
  readonly atMs: number;
}

/** A warm-up in progress. */
export interface Warmup {
  readonly startedAtMs: number;
  /** Fixed at the start, so a change of the configured period does not move running warm-ups. */
  readonly endsAtMs: number;
  /** The ramp step in force, 0..{@link warmupSteps} − 1; see {@link warmupFactor}. */
  readonly step: number;
}

/** How the registry scores health and warms instances up. */
export interface HealthScoring {
  /** The EWMA time constant τ. Positive. */
  readonly windowMs: number;
  /** A check at or below this latency is perfect (h = 1); at twice it h = 0.5. Positive. */
  readonly latencyTargetMs: number;
  /** Warm-up period of an instance that becomes routable again; 0 = no warm-up. */
  readonly warmupMs: number;
}

/** Health scoring with defaults for what `overrides` leaves out: 10 s window, 250 ms latency target, 5 min warm-up. */
export function defaultHealthScoring(overrides: Partial<HealthScoring> = {}): HealthScoring {
  return {
    windowMs: overrides.windowMs ?? 10_000,
    latencyTargetMs: overrides.latencyTargetMs ?? 250,
    warmupMs: overrides.warmupMs ?? 300_000,
  };
}

/** The score of a new instance: 1, with signal 1, from `nowMs`. */
export function initialScore(nowMs: number): HealthScore {
  return Object.freeze({ value: 1, signal: 1, atMs: nowMs });
}

/**
 * The instantaneous signal `h × l` (module comment).
 *
 * @param check the latest health check, if any
 * @param stale whether the instance is stale
 */
export function healthSignal(
  check: { readonly healthy: boolean; readonly latencyMs: number } | undefined,
  stale: boolean,
  latencyTargetMs: number,
): number {
  if (stale) return 0;
  if (check === undefined) return 1;
  return check.healthy ? Math.min(1, latencyTargetMs / Math.max(check.latencyMs, 1)) : 0;
}

/**
 * The score at `nowMs`: s(t) = v + (s0 − v)·exp(−(t − t0)/τ). A time before
 * `atMs` (the clock moved back) gives the stored value, never an
 * extrapolation into the past.
 */
export function scoreAt(score: HealthScore, nowMs: number, windowMs: number): number {
  const elapsed = nowMs - score.atMs;
  if (elapsed <= 0 || score.value === score.signal) return score.value;
  return score.signal + (score.value - score.signal) * Math.exp(-elapsed / windowMs);
}

/**
 * Records an observation: advances the score to `nowMs` with the signal in
 * force so far, then makes `signal` the one in force from now on. The anchor
 * never moves backwards.
 */
export function observeScore(score: HealthScore, signal: number, nowMs: number, windowMs: number): HealthScore {
  return Object.freeze({ value: scoreAt(score, nowMs, windowMs), signal, atMs: Math.max(score.atMs, nowMs) });
}

/** Whether a score takes its instance out of routing (below {@link degradedScoreThreshold}). */
export function isDegradedScore(value: number): boolean {
  return value < degradedScoreThreshold;
}

/**
 * The share of its weight an instance gets at warm-up step `step`:
 * `0.1 × 10^(step / steps)`, so 0.1 at step 0 and ×10^(1/10) ≈ ×1.26 per
 * step; 1 from step {@link warmupSteps} on (the warm-up is over).
 */
export function warmupFactor(step: number): number {
  if (step >= warmupSteps) return 1;
  return warmupStartFactor * 10 ** (Math.max(step, 0) / warmupSteps);
}

/** A warm-up starting at `nowMs`, or undefined when warm-up is off (`warmupMs` 0). */
export function startWarmup(nowMs: number, warmupMs: number): Warmup | undefined {
  if (warmupMs <= 0) return undefined;
  return Object.freeze({ startedAtMs: nowMs, endsAtMs: nowMs + warmupMs, step: 0 });
}

/**
 * The ramp step of a warm-up at `nowMs`: `floor(elapsed / period × steps)`,
 * 0 before the start (clock moved back), {@link warmupSteps} or more once it
 * is over. Integer arithmetic, so step boundaries are exact.
 */
export function warmupStepAt(warmup: Warmup, nowMs: number): number {
  const period = warmup.endsAtMs - warmup.startedAtMs;
  const elapsed = nowMs - warmup.startedAtMs;
  if (elapsed <= 0) return 0;
  if (elapsed >= period) return warmupSteps;
  return Math.floor((elapsed * warmupSteps) / period);
}

/**
 * The warm-up at `nowMs`: the same object while its step has not changed,
 * one with the new step when it has, undefined once it is over. The step
 * never goes back.
 */
export function advanceWarmup(warmup: Warmup, nowMs: number): Warmup | undefined {
  const step = Math.max(warmup.step, warmupStepAt(warmup, nowMs));
  if (step >= warmupSteps) return undefined;
  return step === warmup.step ? warmup : Object.freeze({ ...warmup, step });
}
