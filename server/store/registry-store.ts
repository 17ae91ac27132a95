import type {
  HealthRecord,
  InstanceInput,
  InstanceRecord,
  RegistryChange,
  RegistryLimits,
  TopologyEvent,
} from "../core/registry/model.js";
import type { HealthScoring } from "../core/registry/health-score.js";
import { legacyRecord, type LegacyInstanceRecord } from "../core/registry/record.js";
import { RegistryState } from "../core/registry/registry-state.js";
import type { HealthInput } from "../core/registry/validation.js";
import type { SqliteDatabase } from "./database.js";
import type { GroupCommitter } from "./group-commit.js";
import { RevisionLog, revisionLogSchema, type RevisionedChange } from "./revision-log.js";

/** The revision-log stream of topology changes. */
export const topologyStream = "topology";

/** SQL of the registry's tables, for the migration that creates them. */
export const registrySchema = `
CREATE TABLE registry_instances (
  instance_id TEXT PRIMARY KEY,
  service_name TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  region TEXT NOT NULL,
  zone TEXT NOT NULL,
  weight INTEGER NOT NULL,
  metadata TEXT NOT NULL,
  registered_at_ms INTEGER NOT NULL,
  last_heartbeat_ms INTEGER NOT NULL,
  stale INTEGER NOT NULL,
  active_connections INTEGER NOT NULL,
  health TEXT
) WITHOUT ROWID;
${revisionLogSchema(topologyStream)}
`;

/**
 * SQL of the migration that adds health scoring to `registry_instances`: the
 * score's EWMA triple, the degraded flag and the warm-up (start, end and ramp
 * step; NULL start = not warming up). Rows already there get what
 * `legacyRecord` gives records from before health scoring: score 1 as of
 * their last heartbeat, signal 0 when unhealthy or stale and 1 otherwise.
 */
export const registryHealthSchema = `
ALTER TABLE registry_instances ADD COLUMN health_score REAL NOT NULL DEFAULT 1;
ALTER TABLE registry_instances ADD COLUMN health_signal REAL NOT NULL DEFAULT 1;
ALTER TABLE registry_instances ADD COLUMN health_score_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE registry_instances ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE registry_instances ADD COLUMN warmup_started_at_ms INTEGER;
ALTER TABLE registry_instances ADD COLUMN warmup_ends_at_ms INTEGER;
ALTER TABLE registry_instances ADD COLUMN warmup_step INTEGER NOT NULL DEFAULT 0;
UPDATE registry_instances SET
  health_score_at_ms = last_heartbeat_ms,
  health_signal = CASE WHEN stale = 1 OR json_extract(health, '$.healthy') = 0 THEN 0 ELSE 1 END;
`;

/** Options for {@link RegistryStore}. */
export interface RegistryStoreOptions {
  readonly limits: RegistryLimits;
  /** A read-only connection to the same file (`openReader`): watch catch-up reads go through it. */
  readonly reader?: SqliteDatabase;
  /** Health window, latency target and warm-up period; default `defaultHealthScoring()`. */
  readonly scoring?: HealthScoring;
  /** Random source for weighted selection; default Math.random. */
  readonly rng?: () => number;
  /** Clock in epoch milliseconds; default Date.now. */
  readonly now?: () => number;
}

/** The outcome of a write: its result and the revision of its change (0 when it changed nothing watchers see). */
export interface Committed<R> {
  readonly result: R;
  readonly revision: number;
}

interface Row {
  instance_id: string;
  service_name: string;
  endpoint: string;
  region: string;
  zone: string;
  weight: number;
  metadata: string;
  registered_at_ms: number;
  last_heartbeat_ms: number;
  stale: number;
  active_connections: number;
  health: string | null;
  health_score: number;
  health_signal: number;
  health_score_at_ms: number;
  degraded: number;
  warmup_started_at_ms: number | null;
  warmup_ends_at_ms: number | null;
  warmup_step: number;
}

/**
 * Topology events as JSON. Events appended before health scoring existed
 * carry records without a score: they decode with `legacyRecord`'s defaults.
 */
const codec = {
  encode: (event: TopologyEvent): Uint8Array => Buffer.from(JSON.stringify(event)),
  decode: (bytes: Uint8Array): TopologyEvent => {
    const event = JSON.parse(Buffer.from(bytes).toString("utf8")) as Omit<TopologyEvent, "record"> & {
      record: InstanceRecord | LegacyInstanceRecord;
    };
    return "score" in event.record ? (event as TopologyEvent) : { ...event, record: legacyRecord(event.record) };
  },
};

/**
 * The registry's persistence: instance rows and the topology revision log in
 * SQLite, the in-memory {@link RegistryState} that serves every read, and the
 * change feed watchers consume.
 *
 * Every write follows the same steps inside one group-committed op, so the
 * database, the memory and the revision log never disagree:
 * 1. plan the change against the current state (typed errors abort here);
 * 2. write the rows and, when the change has events, append them to the
 *    revision log under the next revision;
 * 3. apply the change to memory.
 * After COMMIT, listeners get the change in commit order, and the caller is
 * answered with the revision. If a whole batch is rolled back, memory and the
 * revision counter are reloaded from the database.
 *
 * The state is loaded with the store's creation time (its clock), which
 * starts `RegistryState`'s startup grace: instances silent only because the
 * control plane was down get one heartbeat timeout after the restart before
 * they turn stale. A reload after a rollback keeps that creation time.
 */
export class RegistryStore {
  /** Every read is served from here; never a SQL query per call. */
  readonly state: RegistryState;
  /** The durable topology change history, the source of watch catch-up. */
  readonly log: RevisionLog<TopologyEvent>;
  private readonly now: () => number;
  /** When this store was created: the start of the startup grace, for every load. */
  private readonly startedAtMs: number;
  private readonly listeners = new Set<(change: RevisionedChange<TopologyEvent>) => void>();
  private readonly insertStmt;
  private readonly updateStmt;
  private readonly deleteStmt;
  private readonly selectAllStmt;

  constructor(
    db: SqliteDatabase,
    private readonly committer: GroupCommitter,
    options: RegistryStoreOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.startedAtMs = this.now();
    this.state = new RegistryState(options.limits, options.rng ?? Math.random, options.scoring);
    this.log = new RevisionLog(db, topologyStream, codec, options.reader);
    this.insertStmt = db.prepare(
      `INSERT INTO registry_instances (instance_id, service_name, endpoint, region, zone, weight, metadata,
         registered_at_ms, last_heartbeat_ms, stale, active_connections, health,
         health_score, health_signal, health_score_at_ms, degraded, warmup_started_at_ms, warmup_ends_at_ms, warmup_step)
       VALUES (@instance_id, @service_name, @endpoint, @region, @zone, @weight, @metadata,
         @registered_at_ms, @last_heartbeat_ms, @stale, @active_connections, @health,
         @health_score, @health_signal, @health_score_at_ms, @degraded, @warmup_started_at_ms, @warmup_ends_at_ms, @warmup_step)`,
    );
    this.updateStmt = db.prepare(
      `UPDATE registry_instances SET last_heartbeat_ms = @last_heartbeat_ms, stale = @stale,
         active_connections = @active_connections, health = @health,
         health_score = @health_score, health_signal = @health_signal, health_score_at_ms = @health_score_at_ms,
         degraded = @degraded, warmup_started_at_ms = @warmup_started_at_ms, warmup_ends_at_ms = @warmup_ends_at_ms,
         warmup_step = @warmup_step
       WHERE instance_id = @instance_id`,
    );
    this.deleteStmt = db.prepare("DELETE FROM registry_instances WHERE instance_id = ?");
    this.selectAllStmt = db.prepare("SELECT * FROM registry_instances");
    this.reload();
    committer.onRollback(() => this.reload());
  }

  /** Subscribes to committed changes, delivered in commit order. */
  onChange(listener: (change: RevisionedChange<TopologyEvent>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Registers a validated instance. */
  register(input: InstanceInput): Promise<Committed<InstanceRecord>> {
    return this.commit((now) => {
      const change = this.state.planRegister(input, now);
      return { change, result: change.events[0]!.record };
    });
  }

  /** Registers validated instances in one transaction, one result each. */
  bulkRegister(inputs: readonly InstanceInput[], failFast: boolean) {
    return this.commit((now) => {
      const { results, change } = this.state.planBulkRegister(inputs, failFast, now);
      return { change, result: results };
    });
  }

  /** Removes an instance (reason: deregistered). */
  deregister(instanceId: string): Promise<Committed<InstanceRecord>> {
    return this.commit(() => {
      const change = this.state.planDeregister(instanceId);
      return { change, result: change.events[0]!.record };
    });
  }

  /** Records a heartbeat; the revision is non-zero only when it changed routing (e.g. stale to fresh). */
  heartbeat(instanceId: string, activeConnections: number | undefined): Promise<Committed<InstanceRecord>> {
    return this.commit((now) => {
      const change = this.state.planHeartbeat(instanceId, activeConnections, now);
      return { change, result: (change.events[0]?.record ?? change.quiet[0])! };
    });
  }

  /** Records a validated health result; the revision is non-zero only when it changed routing. */
  updateHealth(input: HealthInput): Promise<Committed<InstanceRecord>> {
    return this.commit((now) => {
      const change = this.state.planHealthUpdate(input, now);
      return { change, result: (change.events[0]?.record ?? change.quiet[0])! };
    });
  }

  /** Records validated health results and evicts instances at the failure threshold, in one transaction. */
  sweep(results: readonly HealthInput[], evictThreshold: number) {
    return this.commit((now) => {
      const { change, evicted, unknown } = this.state.planSweep(results, evictThreshold, now);
      return { change, result: { evicted, unknown } };
    });
  }

  /**
   * One staleness pass: marks stale instances, evicts long-stale ones unless
   * self-preservation holds, and applies score drift and warm-up steps.
   */
  reap() {
    return this.commit((now) => {
      const { change, selfPreservation } = this.state.planReap(now);
      return { change, result: { selfPreservation, evicted: change.events.filter((e) => e.kind === "removed").length } };
    });
  }

  /** Trims the revision log to the retention rule; returns the number of changes removed. */
  compact(keepChanges: number, keepAgeMs: number): Promise<number> {
    return this.committer.write(() => this.log.compact({ keepChanges, keepAgeMs }, this.now()));
  }

  private commit<R>(plan: (nowMs: number) => { change: RegistryChange; result: R }): Promise<Committed<R>> {
    return this.committer
      .write(
        () => {
          const now = this.now();
          const { change, result } = plan(now);
          this.persist(change);
          const revision = change.events.length > 0 ? this.log.append(change.events, now) : 0;
          this.state.apply(change);
          return { result, revision, events: change.events };
        },
        ({ revision, events }) => {
          if (revision === 0) return;
          const committed = { revision, events };
          for (const listener of this.listeners) listener(committed);
        },
      )
      .then(({ result, revision }) => ({ result, revision }));
  }

  private persist(change: RegistryChange): void {
    for (const event of change.events) {
      if (event.kind === "added") this.insertStmt.run(toRow(event.record));
      else if (event.kind === "removed") this.deleteStmt.run(event.record.instance.instanceId);
      else this.update(event.record);
    }
    for (const record of change.quiet) this.update(record);
  }

  private update(record: InstanceRecord): void {
    this.updateStmt.run(mutableColumns(record));
  }

  /** Rebuilds memory and the revision counter from the database. */
  private reload(): void {
    const rows = this.selectAllStmt.all() as Row[];
    this.state.load(rows.map(fromRow), false, this.startedAtMs);
    this.log.reload();
  }
}

/** The columns an update writes: everything but the registration's own. */
type MutableColumns = Omit<Row, "service_name" | "endpoint" | "region" | "zone" | "weight" | "metadata" | "registered_at_ms">;

function mutableColumns(record: InstanceRecord): MutableColumns {
  const { score, warmup } = record;
  return {
    instance_id: record.instance.instanceId,
    last_heartbeat_ms: record.instance.lastHeartbeatMs,
    stale: record.stale ? 1 : 0,
    active_connections: record.activeConnections,
    health: record.health === undefined ? null : JSON.stringify(record.health),
    health_score: score.value,
    health_signal: score.signal,
    health_score_at_ms: score.atMs,
    degraded: record.degraded ? 1 : 0,
    warmup_started_at_ms: warmup?.startedAtMs ?? null,
    warmup_ends_at_ms: warmup?.endsAtMs ?? null,
    warmup_step: warmup?.step ?? 0,
  };
}

function toRow(record: InstanceRecord): Row {
  const { instance } = record;
  return {
    ...mutableColumns(record),
    service_name: instance.serviceName,
    endpoint: instance.endpoint,
    region: instance.region,
    zone: instance.zone,
    weight: instance.weight,
    metadata: JSON.stringify(instance.metadata),
    registered_at_ms: instance.registeredAtMs,
  };
}

function fromRow(row: Row): InstanceRecord {
  const health = row.health === null ? undefined : (JSON.parse(row.health) as HealthRecord);
  const warmup =
    row.warmup_started_at_ms === null || row.warmup_ends_at_ms === null
      ? undefined
      : { startedAtMs: row.warmup_started_at_ms, endsAtMs: row.warmup_ends_at_ms, step: row.warmup_step };
  return {
    instance: {
      instanceId: row.instance_id,
      serviceName: row.service_name,
      endpoint: row.endpoint,
      region: row.region,
      zone: row.zone,
      weight: row.weight,
      metadata: JSON.parse(row.metadata) as Record<string, string>,
      registeredAtMs: row.registered_at_ms,
      lastHeartbeatMs: row.last_heartbeat_ms,
    },
    ...(health !== undefined ? { health } : {}),
    healthy: health?.healthy ?? true,
    stale: row.stale === 1,
    activeConnections: row.active_connections,
    score: { value: row.health_score, signal: row.health_signal, atMs: row.health_score_at_ms },
    degraded: row.degraded === 1,
    ...(warmup !== undefined ? { warmup } : {}),
  };
}
