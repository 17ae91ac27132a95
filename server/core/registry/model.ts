/**
 * The registry's domain types. Every value is a plain, readonly object and
 * times are epoch milliseconds.
 *
 * Invariant: records are immutable. Every change produces a new
 * {@link InstanceRecord} object, never an in-place edit, because the RPC layer
 * caches the protobuf rendering of a record by object identity.
 */
import { warmupFactor, type HealthScore, type Warmup } from "./health-score.js";

/** One registered instance of a service, as the client described it plus the server's timestamps. */
export interface Instance {
  readonly instanceId: string;
  readonly serviceName: string;
  /** `host:port`, with an IPv6 host in brackets. */
  readonly endpoint: string;
  readonly region: string;
  readonly zone: string;
  /** Load-balancing weight, 1..100. */
  readonly weight: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Stamped by the server on registration. */
  readonly registeredAtMs: number;
  /** Stamped by the server on registration and each heartbeat; never decreases. */
  readonly lastHeartbeatMs: number;
}

/** The client-supplied part of an {@link Instance}: the server stamps the times itself. */
export type InstanceInput = Omit<Instance, "registeredAtMs" | "lastHeartbeatMs">;

/** The latest recorded health check of an instance. */
export interface HealthRecord {
  readonly instanceId: string;
  readonly healthy: boolean;
  readonly latencyMs: number;
  readonly consecutiveFailures: number;
  /** Stamped by the server when the result was recorded. */
  readonly lastCheckMs: number;
  readonly reason?: string;
}

/** The client-supplied part of a {@link HealthRecord}: the server stamps `lastCheckMs`. */
export type HealthInput = Omit<HealthRecord, "lastCheckMs">;

/**
 * An instance together with what the registry knows of it now. Immutable:
 * see the module comment.
 */
export interface InstanceRecord {
  readonly instance: Instance;
  /** The latest recorded health check, if any. */
  readonly health?: HealthRecord;
  /** The latest health check said healthy; true until a check says otherwise. */
  readonly healthy: boolean;
  /**
   * No heartbeat within the heartbeat timeout. A stored flag, maintained by
   * the staleness pass (sets it) and heartbeats (clear it), so reads need no
   * clock.
   */
  readonly stale: boolean;
  /** Connection count from the latest heartbeat that carried one; 0 before that. */
  readonly activeConnections: number;
  /**
   * The health score's EWMA state (see `health-score.ts`), as of its latest
   * evaluation: a heartbeat, a health result, or a staleness pass that
   * changed the instance.
   */
  readonly score: HealthScore;
  /**
   * The score was below 0.3 when last evaluated. A stored flag like `stale`:
   * kept current by every write and by the staleness pass, so reads need no
   * clock.
   */
  readonly degraded: boolean;
  /**
   * Set while the instance warms up after becoming routable again (never for
   * a new registration); only ever set on a routable record.
   */
  readonly warmup?: Warmup;
}

/**
 * Whether selection, xDS and healthy-only resolution may return the
 * instance: healthy, not stale and not degraded.
 */
export function isRoutable(record: InstanceRecord): boolean {
  return record.healthy && !record.stale && !record.degraded;
}

/**
 * The weight load balancing uses for a routable instance: what selection
 * (every strategy) and xDS endpoint weights both read, so the two never
 * disagree. The configured weight, or while warming up exactly `weight ×
 * warmupFactor(step)` of the stored ramp step — unrounded, so a weight-1
 * instance gets 0.1 at step 0, not 1. Always positive; a whole number when
 * not warming up. Every warm-up step changes it (the factor rises strictly).
 */
export function effectiveWeight(record: InstanceRecord): number {
  const { warmup, instance } = record;
  return warmup === undefined ? instance.weight : instance.weight * warmupFactor(warmup.step);
}

/**
 * The weight the instance actually gets traffic with: its effective weight
 * while routable, 0 otherwise. What the effective-weight metric reports, as
 * is.
 */
export function routedWeight(record: InstanceRecord): number {
  return isRoutable(record) ? effectiveWeight(record) : 0;
}

/**
 * {@link routedWeight} as the whole number `InstanceState.effective_weight`
 * (an int32) carries: rounded to the nearest integer and at least 1 while
 * routable (a routable instance never shows 0, which means "gets no
 * traffic"); 0 otherwise.
 */
export function wholeRoutedWeight(record: InstanceRecord): number {
  return isRoutable(record) ? Math.max(1, Math.round(effectiveWeight(record))) : 0;
}

/** What happened to an instance. */
export type TopologyEventKind = "added" | "updated" | "removed";

/** Why an instance was removed. */
export type RemovalReason = "deregistered" | "evicted_unhealthy" | "evicted_stale";

/** One instance's change, as watchers see it. */
export interface TopologyEvent {
  readonly kind: TopologyEventKind;
  /** The instance's new state; for `removed`, its last state. */
  readonly record: InstanceRecord;
  /** Set for `removed` only. */
  readonly reason?: RemovalReason;
}

/**
 * The outcome of planning one mutation: what the store persists and then
 * hands to `RegistryState.apply`. Each instance appears at most once across
 * `events` and `quiet`.
 */
export interface RegistryChange {
  /**
   * Changes that get a revision and go to watchers: register, deregister,
   * eviction, and every update that changes routing — a healthy-flag flip, a
   * stale/fresh transition, a change of routability (the degraded flag of a
   * healthy, fresh instance), or of the effective weight of a routable
   * instance (every warm-up step and the warm-up's end).
   */
  readonly events: TopologyEvent[];
  /**
   * Record updates to persist without an event, because routing stays as it
   * was: a plain heartbeat (lastHeartbeatMs, activeConnections, score), a
   * health result that changes neither routability nor effective weight
   * (latency, failures, score), a degraded flip of an instance that is not
   * routable anyway. (A warm-up step always changes the effective weight,
   * so it is never quiet.)
   */
  readonly quiet: InstanceRecord[];
  /** Set by a staleness pass only: whether self-preservation holds after it. */
  readonly selfPreservation?: boolean;
}

/** The registry's configured limits and timeouts. */
export interface RegistryLimits {
  /**
   * Without a heartbeat for longer than this, an instance is stale (not
   * routable). Silence counts from the startup load at the earliest (the
   * startup grace, see `RegistryState`), here and for eviction.
   */
  readonly heartbeatTimeoutMs: number;
  /** Instances one service may have registered at once. */
  readonly maxInstancesPerService: number;
  /** Without a heartbeat for longer than this, an instance is evicted; 0 = never. */
  readonly deregisterStaleAfterMs: number;
  /**
   * Share (0..1) of all registered instances that, when exceeded by the stale
   * evictions of one pass, makes the pass evict none (self-preservation).
   */
  readonly selfPreservationThreshold: number;
}

/**
 * The registry's limits with defaults for what `overrides` leaves out:
 * 30 s heartbeat timeout, 100 instances per service, eviction after
 * 3 × the (possibly overridden) heartbeat timeout, self-preservation at 50%.
 */
export function defaultRegistryLimits(overrides: Partial<RegistryLimits> = {}): RegistryLimits {
  const heartbeatTimeoutMs = overrides.heartbeatTimeoutMs ?? 30_000;
  return {
    heartbeatTimeoutMs,
    maxInstancesPerService: overrides.maxInstancesPerService ?? 100,
    deregisterStaleAfterMs: overrides.deregisterStaleAfterMs ?? 3 * heartbeatTimeoutMs,
    selfPreservationThreshold: overrides.selfPreservationThreshold ?? 0.5,
  };
}
