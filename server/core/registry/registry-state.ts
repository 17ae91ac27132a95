import { AlreadyExistsError, InvalidFieldError, LimitExceededError, NotFoundError, type DomainError } from "../errors.js";
import {
  isRoutable,
  type HealthInput,
  type InstanceInput,
  type InstanceRecord,
  type RegistryChange,
  type RegistryLimits,
  type TopologyEvent,
} from "./model.js";
import { defaultHealthScoring, type HealthScoring } from "./health-score.js";
import { byId, byServiceThenId, byWeightThenId, compareText } from "./ordering.js";
import { agedRecord, changesRouting, healthRecord, heartbeatRecord, registeredRecord, staleRecord } from "./record.js";
import { pickInstance, type Rotations, type SelectionStrategy } from "./selection.js";

const noRecords: ReadonlyMap<string, InstanceRecord> = new Map();

/** What {@link RegistryState.resolve} lists. */
export interface ResolveQuery {
  readonly serviceName: string;
  /** Only instances in this region (a strict filter). */
  readonly region?: string;
  /** Only routable instances (healthy, not stale, not degraded). */
  readonly healthyOnly: boolean;
  /** Only instances with at least this (configured) weight. */
  readonly minWeight: number;
}

/** What {@link RegistryState.select} picks from. */
export interface SelectQuery {
  readonly serviceName: string;
  /** Preferred region: used when it has a routable instance, otherwise any region. */
  readonly region?: string;
  readonly strategy: SelectionStrategy;
}

/** One service's instance counts in one region. */
export interface RegionCounts {
  readonly instances: number;
  /** Routable instances (healthy, not stale, not degraded). */
  readonly healthy: number;
}

/** The outcome for one instance of a bulk registration. */
export interface BulkRegisterResult {
  readonly instanceId: string;
  readonly registered: boolean;
  /** Why it was not registered; absent when registered or not attempted. */
  readonly error?: string;
}

/** A planned bulk registration: one result per input, in input order. */
export interface BulkRegisterPlan {
  readonly results: BulkRegisterResult[];
  readonly change: RegistryChange;
}

/** A planned health-check sweep. */
export interface SweepPlan {
  /** Instances removed for reaching the failure threshold, in order of first mention. */
  readonly evicted: string[];
  /** Instance ids of results that matched no instance (skipped), without repeats. */
  readonly unknown: string[];
  readonly change: RegistryChange;
}

/** A planned staleness pass. */
export interface ReapPlan {
  readonly change: RegistryChange;
  /** Whether self-preservation holds after the pass (also in `change`). */
  readonly selfPreservation: boolean;
}

/**
 * The registry's in-memory state: every instance record, indexed by id and
 * by service so that service queries never scan other services. It serves
 * every read; the store keeps it equal to the database.
 *
 * Writes come in two steps, because the store persists in between:
 * 1. `planX(...)` checks the request against the current state and computes
 *    a {@link RegistryChange} of new record objects. It throws typed domain
 *    errors and never mutates anything.
 * 2. {@link apply} writes the change into the maps. It tolerates replays: an
 *    update or removal of an instance that is no longer there is ignored.
 *
 * Which updates are events and which are quiet is decided in one place,
 * `changesRouting` (record.ts): every change of routability or effective
 * weight gets a revision, so a consumer that rebuilds on revisions (xDS)
 * never misses one.
 *
 * Startup grace: silence (for staleness and eviction) is measured from the
 * later of an instance's last heartbeat and the moment the state was loaded
 * from storage ({@link load}). The control plane cannot receive heartbeats
 * while it is down, so after an outage longer than the heartbeat timeout
 * the stored `lastHeartbeatMs` of every instance is old, through no fault of
 * the instances; without the grace the first pass after a restart would mark
 * the whole fleet stale and xDS clients would get empty endpoint lists. With
 * it, instances get one heartbeat timeout after the restart to check in
 * (Eureka similarly does not expire leases right after a restart).
 *
 * Invariants: `byId` and `byService` hold the same records; no service map is
 * empty; an instance's service never changes; records are never mutated.
 * Time and randomness are injected (`nowMs` arguments, `rng`).
 */
export class RegistryState {
  private readonly byId = new Map<string, InstanceRecord>();
  private readonly byService = new Map<string, Map<string, InstanceRecord>>();
  /** Smooth weighted round-robin state, keyed `service \n region` (region empty for all regions). */
  private readonly rotations: Rotations = new Map();
  private preserving = false;
  /** When the state was loaded from storage: silence is measured from no earlier than this (class comment). */
  private loadedAtMs = -Infinity;

  /**
   * @param limits heartbeat timeout, per-service limit, eviction and self-preservation settings
   * @param rng uniform random numbers in [0, 1) for weighted selection
   * @param scoring health window, latency target and warm-up period
   */
  constructor(
    private readonly limits: RegistryLimits,
    private readonly rng: () => number,
    private readonly scoring: HealthScoring = defaultHealthScoring(),
  ) {}

  /** Registered instances, all services. */
  get size(): number {
    return this.byId.size;
  }

  /** Whether the last staleness pass held back evictions (Eureka self-preservation). */
  get selfPreservation(): boolean {
    return this.preserving;
  }

  /** The record of an instance, or undefined when it is not registered. */
  get(instanceId: string): InstanceRecord | undefined {
    return this.byId.get(instanceId);
  }

  /** A service's instances matching `query`, by (configured) weight descending, then instance_id. */
  resolve(query: ResolveQuery): InstanceRecord[] {
    const matches: InstanceRecord[] = [];
    for (const record of this.serviceRecords(query.serviceName)) {
      if (query.region !== undefined && record.instance.region !== query.region) continue;
      if (query.healthyOnly && !isRoutable(record)) continue;
      if (record.instance.weight < query.minWeight) continue;
      matches.push(record);
    }
    return matches.sort(byWeightThenId);
  }

  /**
   * Picks one routable instance of a service with the query's strategy,
   * preferring the query's region when it has a routable instance; undefined
   * when the service has none. Round-robin rotates separately per service
   * and per region actually picked from.
   */
  select(query: SelectQuery): InstanceRecord | undefined {
    const routable = [...this.serviceRecords(query.serviceName)].filter(isRoutable);
    let candidates = routable;
    let scope = "";
    if (query.region !== undefined) {
      const local = routable.filter((record) => record.instance.region === query.region);
      if (local.length > 0) {
        candidates = local;
        scope = query.region;
      }
    }
    return pickInstance(query.strategy, candidates.sort(byId), {
      rng: this.rng,
      rotations: this.rotations,
      key: `${query.serviceName}\n${scope}`,
    });
  }

  /** Stale instances of one service, or of all when `serviceName` is undefined; by service, then instance_id. */
  staleInstances(serviceName?: string): InstanceRecord[] {
    const records = serviceName === undefined ? this.byId.values() : this.serviceRecords(serviceName);
    return [...records].filter((record) => record.stale).sort(byServiceThenId);
  }

  /** Instance and routable counts per service and region, both in name order. */
  topology(): Map<string, Map<string, RegionCounts>> {
    const topology = new Map<string, Map<string, RegionCounts>>();
    for (const service of [...this.byService.keys()].sort(compareText)) {
      const counts = new Map<string, { instances: number; healthy: number }>();
      for (const record of this.serviceRecords(service)) {
        let region = counts.get(record.instance.region);
        if (region === undefined) {
          region = { instances: 0, healthy: 0 };
          counts.set(record.instance.region, region);
        }
        region.instances++;
        if (isRoutable(record)) region.healthy++;
      }
      topology.set(service, new Map([...counts].sort(([a], [b]) => compareText(a, b))));
    }
    return topology;
  }

  /** A service's routable instances outside `excludeRegions`, by weight descending, then instance_id. */
  failoverCandidates(serviceName: string, excludeRegions: Iterable<string>): InstanceRecord[] {
    const excluded = new Set(excludeRegions);
    return [...this.serviceRecords(serviceName)]
      .filter((record) => isRoutable(record) && !excluded.has(record.instance.region))
      .sort(byWeightThenId);
  }

  /** Every record, in no particular order (a live view: do not mutate the state while iterating). */
  all(): IterableIterator<InstanceRecord> {
    return this.byId.values();
  }

  /** The names of the services with at least one instance, in name order. */
  serviceNames(): string[] {
    return [...this.byService.keys()].sort(compareText);
  }

  /** Every record of the given services (all when undefined), by service, then instance_id: a snapshot. */
  records(serviceNames?: ReadonlySet<string>): InstanceRecord[] {
    if (serviceNames === undefined) return [...this.byId.values()].sort(byServiceThenId);
    const records: InstanceRecord[] = [];
    for (const service of serviceNames) records.push(...this.serviceRecords(service));
    return records.sort(byServiceThenId);
  }

  /**
   * Plans the registration of a validated instance, fresh and healthy, stamped `nowMs`.
   *
   * @throws AlreadyExistsError when the instance_id is registered (in any service)
   * @throws LimitExceededError when the service has `maxInstancesPerService` instances
   */
  planRegister(input: InstanceInput, nowMs: number): RegistryChange {
    const error = this.admissionError(input, new Set(), new Map());
    if (error !== undefined) throw error;
    return { events: [{ kind: "added", record: registeredRecord(input, nowMs) }], quiet: [] };
  }

  /**
   * Plans the registration of validated instances in order, as one change.
   * Each input sees the earlier ones of the same bulk: a repeated instance_id
   * fails the later one, and earlier ones count toward the per-service limit.
   * With `failFast`, the inputs after the first failure are not attempted
   * (registered false, no error); the ones before it are still registered.
   */
  planBulkRegister(inputs: readonly InstanceInput[], failFast: boolean, nowMs: number): BulkRegisterPlan {
    const results: BulkRegisterResult[] = [];
    const events: TopologyEvent[] = [];
    const pendingIds = new Set<string>();
    const pendingPerService = new Map<string, number>();
    let stopped = false;
    for (const input of inputs) {
      const { instanceId, serviceName } = input;
      if (stopped) {
        results.push({ instanceId, registered: false });
        continue;
      }
      const error = this.admissionError(input, pendingIds, pendingPerService);
      if (error !== undefined) {
        results.push({ instanceId, registered: false, error: error.message });
        stopped = failFast;
        continue;
      }
      pendingIds.add(instanceId);
      pendingPerService.set(serviceName, (pendingPerService.get(serviceName) ?? 0) + 1);
      events.push({ kind: "added", record: registeredRecord(input, nowMs) });
      results.push({ instanceId, registered: true });
    }
    return { results, change: { events, quiet: [] } };
  }

  /**
   * Plans the removal of an instance (reason: deregistered).
   *
   * @throws NotFoundError when the instance is not registered
   */
  planDeregister(instanceId: string): RegistryChange {
    const record = this.require(instanceId);
    return { events: [{ kind: "removed", record, reason: "deregistered" }], quiet: [] };
  }

  /**
   * Plans a heartbeat at `nowMs`, with the instance's connection count when
   * reported, re-evaluating the instance's health. An `updated` event when it
   * changes routing (a stale instance becomes fresh; the score crossed 0.3
   * or the warm-up moved the effective weight since the last evaluation);
   * otherwise the update is quiet.
   *
   * @throws NotFoundError when the instance is not registered
   */
  planHeartbeat(instanceId: string, activeConnections: number | undefined, nowMs: number): RegistryChange {
    const record = this.require(instanceId);
    return updateOf(record, heartbeatRecord(record, activeConnections, nowMs, this.scoring));
  }

  /**
   * Plans recording a validated health result at `nowMs`, which also feeds
   * the health score. An `updated` event when it changes routing (the
   * healthy flag flips, the instance becomes routable or not, its effective
   * weight changes); otherwise the update is quiet.
   *
   * @throws NotFoundError when the instance is not registered
   */
  planHealthUpdate(input: HealthInput, nowMs: number): RegistryChange {
    const record = this.require(input.instanceId);
    return updateOf(record, healthRecord(record, input, nowMs, this.scoring));
  }

  /**
   * Plans a health-check sweep, as one change:
   * 1. record each validated result as {@link planHealthUpdate} would, in
   *    order (a later result for the same instance supersedes an earlier one);
   *    results for unknown instances are skipped and reported;
   * 2. remove each instance named in `results` whose recorded
   *    consecutive_failures reach `evictThreshold` (reason:
   *    evicted_unhealthy), whatever its healthy flag says; instances not named
   *    in this sweep are left alone;
   * 3. for the others, an `updated` event when the result changes routing
   *    compared with the current state, otherwise a quiet update.
   *
   * @throws InvalidFieldError (`evict_threshold`) unless the threshold is an integer >= 1
   */
  planSweep(results: readonly HealthInput[], evictThreshold: number, nowMs: number): SweepPlan {
    if (!Number.isInteger(evictThreshold)) {
      throw new InvalidFieldError("evict_threshold", `must be an integer, got ${evictThreshold}`);
    }
    if (evictThreshold < 1) throw new InvalidFieldError("evict_threshold", `must be >= 1, got ${evictThreshold}`);
    const latest = new Map<string, InstanceRecord>();
    const unknown = new Set<string>();
    for (const result of results) {
      const current = this.byId.get(result.instanceId);
      if (current === undefined) unknown.add(result.instanceId);
      else latest.set(result.instanceId, healthRecord(current, result, nowMs, this.scoring));
    }
    const evicted: string[] = [];
    const events: TopologyEvent[] = [];
    const quiet: InstanceRecord[] = [];
    for (const [instanceId, next] of latest) {
      if (next.health!.consecutiveFailures >= evictThreshold) {
        evicted.push(instanceId);
        events.push({ kind: "removed", record: next, reason: "evicted_unhealthy" });
      } else if (changesRouting(this.byId.get(instanceId)!, next)) {
        events.push({ kind: "updated", record: next });
      } else {
        quiet.push(next);
      }
    }
    return { evicted, unknown: [...unknown], change: { events, quiet } };
  }

  /**
   * Plans one staleness pass at `nowMs`. An instance's silence is the time
   * since its last heartbeat or since {@link load}, whichever is later (the
   * startup grace: class comment).
   * 1. a fresh instance silent for more than `heartbeatTimeoutMs` becomes
   *    stale (an `updated` event); one stored as stale stays stale;
   * 2. an instance silent for more than `deregisterStaleAfterMs` (when that
   *    is > 0) expires;
   * 3. self-preservation: when the expired instances are more than
   *    `selfPreservationThreshold` of all registered instances, none is
   *    evicted and self-preservation holds; otherwise the expired ones are
   *    removed (reason: evicted_stale, the record marked stale) and
   *    self-preservation is released.
   * 4. time-driven health: an instance whose score drifted across 0.3
   *    (either way) since its last evaluation, or whose warm-up reached its
   *    next ramp step or its end, is re-evaluated — an `updated` event when
   *    that changes routing (every warm-up step does), otherwise a quiet
   *    update (a degraded flip of an instance that is not routable anyway).
   * Staleness marking (1) happens either way: stale instances are never
   * routed to, so marking them is always safe. Instances that nothing of
   * this changed are left out of the change entirely (nothing is written).
   */
  planReap(nowMs: number): ReapPlan {
    const { heartbeatTimeoutMs, deregisterStaleAfterMs, selfPreservationThreshold } = this.limits;
    const passed: { record: InstanceRecord; next: InstanceRecord; expired: boolean }[] = [];
    let expiredCount = 0;
    for (const record of this.byId.values()) {
      const silentMs = nowMs - Math.max(record.instance.lastHeartbeatMs, this.loadedAtMs);
      const turnsStale = !record.stale && silentMs > heartbeatTimeoutMs;
      const expired = deregisterStaleAfterMs > 0 && silentMs > deregisterStaleAfterMs;
      if (expired) expiredCount++;
      const next = turnsStale ? staleRecord(record, nowMs, this.scoring) : agedRecord(record, nowMs, this.scoring);
      if (next !== undefined || expired) passed.push({ record, next: next ?? record, expired });
    }
    const selfPreservation = expiredCount > selfPreservationThreshold * this.byId.size;
    const events: TopologyEvent[] = [];
    const quiet: InstanceRecord[] = [];
    for (const { record, next, expired } of passed) {
      if (expired && !selfPreservation) events.push({ kind: "removed", record: next, reason: "evicted_stale" });
      else if (next === record) continue;
      else if (changesRouting(record, next)) events.push({ kind: "updated", record: next });
      else quiet.push(next);
    }
    return { change: { events, quiet, selfPreservation }, selfPreservation };
  }

  /**
   * Writes a planned change into memory: `added` inserts, `updated` and quiet
   * records replace the instance's record when it is still registered,
   * `removed` deletes it; a self-preservation flag in the change is adopted.
   */
  apply(change: RegistryChange): void {
    for (const event of change.events) {
      if (event.kind === "removed") this.remove(event.record.instance.instanceId);
      else this.put(event.record, event.kind === "added");
    }
    for (const record of change.quiet) this.put(record, false);
    if (change.selfPreservation !== undefined) this.preserving = change.selfPreservation;
  }

  /**
   * Replaces everything with `records` (from storage) and the
   * self-preservation flag, and starts the startup grace (class comment):
   * from now on no instance counts as silent since before `loadedAtMs`.
   * Round-robin rotations start over.
   *
   * @param loadedAtMs when the control plane started serving from this
   *   storage; a reload after a rolled-back write passes the same startup
   *   time again, so it does not extend the grace
   */
  load(records: Iterable<InstanceRecord>, selfPreservation: boolean, loadedAtMs: number): void {
    this.byId.clear();
    this.byService.clear();
    this.rotations.clear();
    for (const record of records) this.put(record, true);
    this.preserving = selfPreservation;
    this.loadedAtMs = loadedAtMs;
  }

  private serviceRecords(serviceName: string): IterableIterator<InstanceRecord> {
    return (this.byService.get(serviceName) ?? noRecords).values();
  }

  private require(instanceId: string): InstanceRecord {
    const record = this.byId.get(instanceId);
    if (record === undefined) throw new NotFoundError(`instance "${instanceId}" is not registered`);
    return record;
  }

  /** Why `input` cannot be registered next to the current state plus the pending ones, if it cannot. */
  private admissionError(
    input: InstanceInput,
    pendingIds: ReadonlySet<string>,
    pendingPerService: ReadonlyMap<string, number>,
  ): DomainError | undefined {
    const { instanceId, serviceName } = input;
    if (this.byId.has(instanceId) || pendingIds.has(instanceId)) {
      return new AlreadyExistsError(`instance "${instanceId}" is already registered`);
    }
    const count = (this.byService.get(serviceName)?.size ?? 0) + (pendingPerService.get(serviceName) ?? 0);
    if (count >= this.limits.maxInstancesPerService) {
      return new LimitExceededError(
        `service "${serviceName}" has reached its limit of ${this.limits.maxInstancesPerService} instances`,
      );
    }
    return undefined;
  }

  private put(record: InstanceRecord, insert: boolean): void {
    const { instanceId, serviceName } = record.instance;
    if (!insert && !this.byId.has(instanceId)) return;
    this.byId.set(instanceId, record);
    let service = this.byService.get(serviceName);
    if (service === undefined) {
      service = new Map();
      this.byService.set(serviceName, service);
    }
    service.set(instanceId, record);
  }

  /** Deletes an instance; a service left empty loses its map and its round-robin state. */
  private remove(instanceId: string): void {
    const record = this.byId.get(instanceId);
    if (record === undefined) return;
    const { serviceName } = record.instance;
    this.byId.delete(instanceId);
    const service = this.byService.get(serviceName)!;
    service.delete(instanceId);
    if (service.size > 0) return;
    this.byService.delete(serviceName);
    const prefix = `${serviceName}\n`;
    for (const key of this.rotations.keys()) if (key.startsWith(prefix)) this.rotations.delete(key);
  }
}

/** A planned update of one instance: an event when it changes routing, quiet otherwise. */
function updateOf(record: InstanceRecord, next: InstanceRecord): RegistryChange {
  return changesRouting(record, next) ? { events: [{ kind: "updated", record: next }], quiet: [] } : { events: [], quiet: [next] };
}
