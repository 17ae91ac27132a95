/**
 * The transitions of an instance record. Each returns a new, frozen record
 * and leaves its argument untouched (records are immutable: see `model.ts`).
 *
 * Every transition after registration re-evaluates the record's health
 * (`health-score.ts`) at `nowMs`, in these steps:
 * 1. advance the score to now with the old signal, then store the signal of
 *    the new state (its latest check and staleness);
 * 2. degraded = score < 0.3; routable = healthy && !stale && !degraded;
 * 3. warm-up: a record that is not routable has none; one that has just
 *    become routable starts one (unless warm-up is off); one that stays
 *    routable advances its ramp step, dropping the warm-up once it is over.
 */
import {
  advanceWarmup,
  healthSignal,
  initialScore,
  isDegradedScore,
  observeScore,
  scoreAt,
  startWarmup,
  warmupStepAt,
  type HealthScoring,
  type Warmup,
} from "./health-score.js";
import { effectiveWeight, isRoutable, type HealthInput, type InstanceInput, type InstanceRecord } from "./model.js";

/** What a transition decides itself; the rest is re-evaluated. */
type RecordBasis = Omit<InstanceRecord, "score" | "degraded" | "warmup">;

/** A record as persisted before health scoring existed: no score, degraded flag or warm-up. */
export type LegacyInstanceRecord = RecordBasis;

/**
 * The record of a legacy one (an old revision-log entry): score 1 as of its
 * last heartbeat, with signal 0 when it was unhealthy or stale (so the score
 * decays from there) and 1 otherwise; not degraded, not warming up. The
 * registry's schema migration gives old rows the same values.
 */
export function legacyRecord(record: LegacyInstanceRecord): InstanceRecord {
  return {
    ...record,
    score: { value: 1, signal: record.healthy && !record.stale ? 1 : 0, atMs: record.instance.lastHeartbeatMs },
    degraded: false,
  };
}

/**
 * The record of a newly registered instance: fresh, healthy, no connections,
 * score 1, not warming up, both times stamped `nowMs`. The metadata is
 * copied, so the caller's object may change later without touching the
 * record.
 */
export function registeredRecord(input: InstanceInput, nowMs: number): InstanceRecord {
  return Object.freeze({
    instance: Object.freeze({
      instanceId: input.instanceId,
      serviceName: input.serviceName,
      endpoint: input.endpoint,
      region: input.region,
      zone: input.zone,
      weight: input.weight,
      metadata: Object.freeze({ ...input.metadata }),
      registeredAtMs: nowMs,
      lastHeartbeatMs: nowMs,
    }),
    healthy: true,
    stale: false,
    activeConnections: 0,
    score: initialScore(nowMs),
    degraded: false,
  });
}

/**
 * The record after a heartbeat at `nowMs`: fresh, with the new connection
 * count when one was reported, re-evaluated. `lastHeartbeatMs` never moves
 * backwards, even when the clock does.
 */
export function heartbeatRecord(
  record: InstanceRecord,
  activeConnections: number | undefined,
  nowMs: number,
  scoring: HealthScoring,
): InstanceRecord {
  return evaluated(
    record,
    {
      instance: Object.freeze({
        ...record.instance,
        lastHeartbeatMs: Math.max(record.instance.lastHeartbeatMs, nowMs),
      }),
      ...(record.health !== undefined ? { health: record.health } : {}),
      healthy: record.healthy,
      stale: false,
      activeConnections: activeConnections ?? record.activeConnections,
    },
    nowMs,
    scoring,
  );
}

/** The record with `input` as its latest health check, recorded at `nowMs`, re-evaluated. */
export function healthRecord(record: InstanceRecord, input: HealthInput, nowMs: number, scoring: HealthScoring): InstanceRecord {
  return evaluated(
    record,
    {
      instance: record.instance,
      health: Object.freeze({
        instanceId: input.instanceId,
        healthy: input.healthy,
        latencyMs: input.latencyMs,
        consecutiveFailures: input.consecutiveFailures,
        lastCheckMs: nowMs,
        ...(input.reason !== undefined ? { reason: input.reason } : {}),
      }),
      healthy: input.healthy,
      stale: record.stale,
      activeConnections: record.activeConnections,
    },
    nowMs,
    scoring,
  );
}

/** The record marked stale (no heartbeat within the timeout) at `nowMs`, re-evaluated. */
export function staleRecord(record: InstanceRecord, nowMs: number, scoring: HealthScoring): InstanceRecord {
  return evaluated(record, { ...basis(record), stale: true }, nowMs, scoring);
}

/**
 * The record as time alone has changed it by `nowMs` — the degraded flag as
 * the score drifted, the warm-up step — or undefined when neither changed
 * (allocating nothing, as a staleness pass does this for every instance).
 */
export function agedRecord(record: InstanceRecord, nowMs: number, scoring: HealthScoring): InstanceRecord | undefined {
  const degraded = isDegradedScore(scoreAt(record.score, nowMs, scoring.windowMs));
  const { warmup } = record;
  const stepMoved = warmup !== undefined && warmupStepAt(warmup, nowMs) > warmup.step;
  if (degraded === record.degraded && !stepMoved) return undefined;
  return evaluated(record, basis(record), nowMs, scoring);
}

/**
 * Whether going from `before` to `after` changes routing, so watchers must
 * see it as an `updated` event with a revision rather than a quiet update:
 * the healthy or stale flag flipped (watchers always saw those), the
 * instance became or stopped being routable, or it stayed routable with
 * another effective weight.
 *
 * That last rule covers every warm-up transition of a routable instance:
 * a warm-up only starts when the instance becomes routable; each step
 * raises the (unrounded) effective weight, whatever the configured weight;
 * and the end moves it from `weight × warmupFactor(9)` to `weight`. So
 * every warm-up step is an `updated` event.
 */
export function changesRouting(before: InstanceRecord, after: InstanceRecord): boolean {
  if (before.healthy !== after.healthy || before.stale !== after.stale) return true;
  const routable = isRoutable(after);
  if (isRoutable(before) !== routable) return true;
  return routable && effectiveWeight(before) !== effectiveWeight(after);
}

function basis(record: InstanceRecord): RecordBasis {
  return {
    instance: record.instance,
    ...(record.health !== undefined ? { health: record.health } : {}),
    healthy: record.healthy,
    stale: record.stale,
    activeConnections: record.activeConnections,
  };
}

/** `next` completed with its score, degraded flag and warm-up at `nowMs`, coming from `previous` (module comment). */
function evaluated(previous: InstanceRecord, next: RecordBasis, nowMs: number, scoring: HealthScoring): InstanceRecord {
  const score = observeScore(
    previous.score,
    healthSignal(next.health, next.stale, scoring.latencyTargetMs),
    nowMs,
    scoring.windowMs,
  );
  const degraded = isDegradedScore(score.value);
  const routable = next.healthy && !next.stale && !degraded;
  let warmup: Warmup | undefined;
  if (routable) {
    warmup = !isRoutable(previous)
      ? startWarmup(nowMs, scoring.warmupMs)
      : previous.warmup === undefined
        ? undefined
        : advanceWarmup(previous.warmup, nowMs);
  }
  return Object.freeze({ ...next, score, degraded, ...(warmup !== undefined ? { warmup } : {}) });
}
