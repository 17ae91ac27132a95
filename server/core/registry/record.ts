/**
 * The transitions of an instance record. Each returns a new, frozen record
 * and leaves its argument untouched (records are immutable: see `model.ts`).
 */
import type { HealthInput, InstanceInput, InstanceRecord } from "./model.js";

/**
 * The record of a newly registered instance: fresh, healthy, no connections,
 * both times stamped `nowMs`. The metadata is copied, so the caller's object
 * may change later without touching the record.
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
  });
}

/**
 * The record after a heartbeat at `nowMs`: fresh, with the new connection
 * count when one was reported. `lastHeartbeatMs` never moves backwards, even
 * when the clock does.
 */
export function heartbeatRecord(
  record: InstanceRecord,
  activeConnections: number | undefined,
  nowMs: number,
): InstanceRecord {
  return Object.freeze({
    ...record,
    instance: Object.freeze({
      ...record.instance,
      lastHeartbeatMs: Math.max(record.instance.lastHeartbeatMs, nowMs),
    }),
    stale: false,
    activeConnections: activeConnections ?? record.activeConnections,
  });
}

/** The record with `input` as its latest health check, recorded at `nowMs`. */
export function healthRecord(record: InstanceRecord, input: HealthInput, nowMs: number): InstanceRecord {
  return Object.freeze({
    ...record,
    health: Object.freeze({
      instanceId: input.instanceId,
      healthy: input.healthy,
      latencyMs: input.latencyMs,
      consecutiveFailures: input.consecutiveFailures,
      lastCheckMs: nowMs,
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
    }),
    healthy: input.healthy,
  });
}

/** The record marked stale (no heartbeat within the timeout). */
export function staleRecord(record: InstanceRecord): InstanceRecord {
  return Object.freeze({ ...record, stale: true });
}
