/**
 * Accounting of a mirror's bounded buffer, as pure planning: the store asks
 * what to do, applies it inside its write transaction and keeps the
 * counters.
 *
 * Rules:
 * - a capture never waits: when a buffer holds `bufferSize` requests, the
 *   incoming request is dropped and counted (tail drop). Requests already
 *   queued were acknowledged to their callers, so they are never evicted to
 *   make room;
 * - Drain and Dispatch remove requests oldest first;
 * - a recorded result counts as dispatched, and as failed and/or as a diff.
 *
 * Counter invariants (for one mirror, from its creation):
 * `captured − removed = pending`, `0 ≤ pending ≤ bufferSize`,
 * `failed ≤ dispatched`, `diffs ≤ dispatched`; counters never decrease.
 */
import { resolveLimit } from "../request-limits.js";
import type { MirrorLimits, MirrorResult } from "./model.js";

/** Per-mirror counters (the Stats RPC's values). */
export interface MirrorStats {
  /** Requests accepted into the buffer. */
  readonly captured: number;
  /** Requests the mirror selected but could not queue: its buffer was full. */
  readonly dropped: number;
  /** Requests in the buffer now. */
  readonly pending: number;
  /** Results recorded (the shadow answered, failed or timed out). */
  readonly dispatched: number;
  /** Results that were not a success. */
  readonly failed: number;
  /** Results whose responses differed. */
  readonly diffs: number;
}

/** A new mirror's counters: all zero. */
export const emptyMirrorStats: MirrorStats = {
  captured: 0,
  dropped: 0,
  pending: 0,
  dispatched: 0,
  failed: 0,
  diffs: 0,
};

/** How many of a run of captures a buffer takes: the first `accepted`, in order; the rest are dropped. */
export interface EnqueuePlan {
  readonly accepted: number;
  readonly dropped: number;
}

/**
 * Plans queueing `count` requests (in order) into a buffer that holds
 * `pending` of `bufferSize`: as many as fit are accepted, the rest dropped.
 */
export function planEnqueue(pending: number, bufferSize: number, count = 1): EnqueuePlan {
  const accepted = Math.max(0, Math.min(count, bufferSize - pending));
  return { accepted, dropped: count - accepted };
}

/** The counters after an {@link EnqueuePlan} was applied. */
export function statsAfterEnqueue(stats: MirrorStats, plan: EnqueuePlan): MirrorStats {
  return {
    ...stats,
    captured: stats.captured + plan.accepted,
    dropped: stats.dropped + plan.dropped,
    pending: stats.pending + plan.accepted,
  };
}

/** The counters after `removed` requests left the buffer (drained or taken for dispatch). */
export function statsAfterRemoval(stats: MirrorStats, removed: number): MirrorStats {
  return { ...stats, pending: stats.pending - Math.min(removed, stats.pending) };
}

/** The counters after `results` were recorded. */
export function statsAfterResults(stats: MirrorStats, results: readonly MirrorResult[]): MirrorStats {
  let failed = 0;
  let diffs = 0;
  for (const result of results) {
    if (!result.success) failed++;
    if (result.diffDetected) diffs++;
  }
  return {
    ...stats,
    dispatched: stats.dispatched + results.length,
    failed: stats.failed + failed,
    diffs: stats.diffs + diffs,
  };
}

/**
 * The number of requests a Drain call takes: `limit`, or the default (100)
 * when unset (0 or undefined, as proto3 cannot tell them apart).
 *
 * @throws InvalidFieldError naming `field` when the limit is not an integer
 *   in 1..`maxBatchSize`
 */
export function resolveDrainLimit(limit: number | undefined, limits: MirrorLimits, field = "limit"): number {
  return resolveLimit(limit, limits.defaultDrainLimit, limits.maxBatchSize, field);
}

/**
 * The number of requests a Dispatch call sends: `batchSize`, or the default
 * (50) when unset (0 or undefined).
 *
 * @throws InvalidFieldError naming `field` when the size is not an integer
 *   in 1..`maxBatchSize`
 */
export function resolveDispatchBatchSize(
  batchSize: number | undefined,
  limits: MirrorLimits,
  field = "batch_size",
): number {
  return resolveLimit(batchSize, limits.defaultDispatchBatchSize, limits.maxBatchSize, field);
}

