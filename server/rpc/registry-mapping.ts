import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  InstanceStateSchema,
  RemovalReason as ProtoRemovalReason,
  TopologyEventSchema,
  TopologyEventType,
  type HealthStatus,
  type InstanceState,
  type ServiceInstance,
  type TopologyEvent as ProtoTopologyEvent,
} from "../../gen/latticeforge/registry/v1/registry_pb.js";
import { InvalidFieldError } from "../core/errors.js";
import { wholeRoutedWeight, type InstanceInput, type InstanceRecord, type RemovalReason, type TopologyEvent } from "../core/registry/model.js";
import type { HealthInput } from "../core/registry/validation.js";

/**
 * Protobuf renderings of instance records, by record identity. Records are
 * immutable (every change makes a new one), so a rendering stays valid for
 * the record's life and Resolve of 100 instances allocates nothing new.
 */
const rendered = new WeakMap<InstanceRecord, InstanceState>();

/** The `InstanceState` message of a record, rendered once per record. */
export function renderInstance(record: InstanceRecord): InstanceState {
  let message = rendered.get(record);
  if (message === undefined) {
    const { instance, health, warmup } = record;
    message = create(InstanceStateSchema, {
      instance: {
        instanceId: instance.instanceId,
        serviceName: instance.serviceName,
        endpoint: instance.endpoint,
        region: instance.region,
        zone: instance.zone,
        weight: instance.weight,
        metadata: { ...instance.metadata },
        registeredAt: timestampFromMs(instance.registeredAtMs),
        lastHeartbeat: timestampFromMs(instance.lastHeartbeatMs),
      },
      healthy: record.healthy,
      stale: record.stale,
      ...(health !== undefined
        ? {
            health: {
              instanceId: health.instanceId,
              healthy: health.healthy,
              latencyMs: health.latencyMs,
              consecutiveFailures: health.consecutiveFailures,
              lastCheck: timestampFromMs(health.lastCheckMs),
              ...(health.reason !== undefined ? { reason: health.reason } : {}),
            },
          }
        : {}),
      activeConnections: record.activeConnections,
      healthScore: record.score.value,
      degraded: record.degraded,
      warmingUp: warmup !== undefined,
      ...(warmup !== undefined ? { warmupEndsAt: timestampFromMs(warmup.endsAtMs) } : {}),
      effectiveWeight: wholeRoutedWeight(record),
    });
    rendered.set(record, message);
  }
  return message;
}

const eventTypes = {
  added: TopologyEventType.ADDED,
  updated: TopologyEventType.UPDATED,
  removed: TopologyEventType.REMOVED,
} as const;

const removalReasons: Record<RemovalReason, ProtoRemovalReason> = {
  deregistered: ProtoRemovalReason.DEREGISTERED,
  evicted_unhealthy: ProtoRemovalReason.EVICTED_UNHEALTHY,
  evicted_stale: ProtoRemovalReason.EVICTED_STALE,
};

/** The `TopologyEvent` message of a domain event. */
export function renderEvent(event: TopologyEvent): ProtoTopologyEvent {
  return create(TopologyEventSchema, {
    type: eventTypes[event.kind],
    instance: renderInstance(event.record),
    reason: event.reason === undefined ? ProtoRemovalReason.UNSPECIFIED : removalReasons[event.reason],
  });
}

/**
 * The client-supplied part of a `ServiceInstance`; the server stamps the
 * times itself, so `registered_at` and `last_heartbeat` in requests are
 * ignored.
 */
export function instanceInput(message: ServiceInstance | undefined, field: string): InstanceInput {
  if (message === undefined) throw new InvalidFieldError(field, "is required");
  return {
    instanceId: message.instanceId,
    serviceName: message.serviceName,
    endpoint: message.endpoint,
    region: message.region,
    zone: message.zone,
    weight: message.weight,
    metadata: message.metadata,
  };
}

/** The client-supplied part of a `HealthStatus`; `last_check` is stamped by the server. */
export function healthInput(message: HealthStatus | undefined, field: string): HealthInput {
  if (message === undefined) throw new InvalidFieldError(field, "is required");
  return {
    instanceId: message.instanceId,
    healthy: message.healthy,
    latencyMs: message.latencyMs,
    consecutiveFailures: message.consecutiveFailures,
    ...(message.reason !== undefined ? { reason: message.reason } : {}),
  };
}
