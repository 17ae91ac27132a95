import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  RegistryService,
  ResolveResponseSchema,
  SelectionStrategy,
  WatchTopologyResponseSchema,
  type ResolveResponse,
  type WatchTopologyResponse,
} from "../../gen/latticeforge/registry/v1/registry_pb.js";
import { InvalidFieldError } from "../core/errors.js";
import type { InstanceInput, InstanceRecord, TopologyEvent } from "../core/registry/model.js";
import type { ResolveQuery } from "../core/registry/registry-state.js";
import type { SelectionStrategy as Strategy } from "../core/registry/selection.js";
import {
  validateHealthInput,
  validateInstanceId,
  validateInstanceInput,
  validateRegion,
  validateServiceName,
} from "../core/registry/validation.js";
import type { RegistryStore } from "../store/registry-store.js";
import type { WatchHub } from "../watch/watch-hub.js";
import { shareEncoding } from "../../client/grpc-definition.js";
import { healthInput, instanceInput, renderEvent, renderInstance } from "./registry-mapping.js";
import { createChangeRenderer } from "./change-renderer.js";
import { streamWatch } from "./watch-stream.js";
import { registerService, type ServiceRegistration } from "./service-registration.js";

/** Most instances one BulkRegister may carry. */
export const maxBulkInstances = 1000;
/** Most results one HealthCheckSweep may carry. */
export const maxSweepResults = 10_000;
/** Most services one WatchTopology may filter on. */
const maxWatchedServices = 1000;

const strategies: Record<SelectionStrategy, Strategy> = {
  [SelectionStrategy.UNSPECIFIED]: "weighted_random",
  [SelectionStrategy.WEIGHTED_RANDOM]: "weighted_random",
  [SelectionStrategy.ROUND_ROBIN]: "round_robin",
  [SelectionStrategy.LEAST_CONNECTIONS]: "least_connections",
  [SelectionStrategy.POWER_OF_TWO_CHOICES]: "power_of_two_choices",
};

/** Options for {@link createRegistryService}. */
export interface RegistryServiceOptions {
  /**
   * Approximate encoded size at which a WatchTopology snapshot is split into
   * several messages; keep it well under the server's message size limit.
   */
  readonly snapshotChunkBytes: number;
}

/**
 * `latticeforge.registry.v1.RegistryService`: each handler checks its
 * request, calls the store (writes) or the in-memory state (reads), and
 * renders the answer. Errors are the core's typed errors, mapped at the edge.
 */
export function createRegistryService(
  store: RegistryStore,
  hub: WatchHub<TopologyEvent>,
  options: RegistryServiceOptions,
): ServiceRegistration {
  const { state } = store;
  const renderChange = createChangeRenderer<TopologyEvent, WatchTopologyResponse>((change, matches) =>
    create(WatchTopologyResponseSchema, {
      message: {
        case: "change",
        value: { revision: BigInt(change.revision), events: change.events.filter(matches).map(renderEvent) },
      },
    }),
  );
  const resolveAnswers = new ResolveAnswerCache();
  return registerService(RegistryService, {
    async register(request) {
      const input = instanceInput(request.instance, "instance");
      validateInstanceInput(input, "instance");
      const { result, revision } = await store.register(input);
      return { instance: renderInstance(result), revision: BigInt(revision) };
    },

    async bulkRegister(request) {
      if (request.instances.length > maxBulkInstances) {
        throw new InvalidFieldError("instances", `must have at most ${maxBulkInstances} entries, got ${request.instances.length}`);
      }
      // Field validation first, in order; state checks (duplicates, limits)
      // happen in the store, in one transaction. With fail_fast, nothing
      // after the first failure of either kind is attempted.
      const results = request.instances.map((m) => ({ instanceId: m.instanceId, registered: false, error: "" }));
      const validIndexes: number[] = [];
      const valid: InstanceInput[] = [];
      let firstInvalid: number | undefined;
      for (const [i, message] of request.instances.entries()) {
        try {
          const input = instanceInput(message, `instances[${i}]`);
          validateInstanceInput(input, `instances[${i}]`);
          validIndexes.push(i);
          valid.push(input);
        } catch (error) {
          if (!(error instanceof InvalidFieldError)) throw error;
          results[i]!.error = error.message;
          if (request.failFast) {
            firstInvalid = i;
            break;
          }
        }
      }
      const { result: outcomes, revision } =
        valid.length > 0 ? await store.bulkRegister(valid, request.failFast) : { result: [], revision: 0 };
      outcomes.forEach((outcome, j) => {
        results[validIndexes[j]!] = { instanceId: outcome.instanceId, registered: outcome.registered, error: outcome.error ?? "" };
      });
      if (firstInvalid !== undefined && outcomes.some((o) => !o.registered && o.error)) {
        results[firstInvalid]!.error = ""; // the store stopped earlier; this one was never attempted
      }
      return { results, revision: BigInt(revision) };
    },

    async deregister(request) {
      validateInstanceId(request.instanceId, "instance_id");
      const { revision } = await store.deregister(request.instanceId);
      return { revision: BigInt(revision) };
    },

    async heartbeat(request) {
      validateInstanceId(request.instanceId, "instance_id");
      if (request.activeConnections !== undefined && request.activeConnections < 0) {
        throw new InvalidFieldError("active_connections", `must be >= 0, got ${request.activeConnections}`);
      }
      const { result, revision } = await store.heartbeat(request.instanceId, request.activeConnections);
      return { lastHeartbeat: timestampFromMs(result.instance.lastHeartbeatMs), revision: BigInt(revision) };
    },

    async updateHealth(request) {
      const input = healthInput(request.status, "status");
      validateHealthInput(input, "status");
      const { result, revision } = await store.updateHealth(input);
      return { instance: renderInstance(result), revision: BigInt(revision) };
    },

    resolve(request) {
      validateServiceName(request.serviceName, "service_name");
      if (request.region !== undefined) validateRegion(request.region, "region");
      if (request.minWeight < 0 || request.minWeight > 100) {
        throw new InvalidFieldError("min_weight", `must be 0..100, got ${request.minWeight}`);
      }
      const query = {
        serviceName: request.serviceName,
        ...(request.region !== undefined ? { region: request.region } : {}),
        healthyOnly: request.healthyOnly ?? true,
        minWeight: request.minWeight,
      };
      return resolveAnswers.answer(query, state.resolve(query), store.log.currentRevision);
    },

    selectInstance(request) {
      validateServiceName(request.serviceName, "service_name");
      if (request.region !== undefined) validateRegion(request.region, "region");
      const strategy = strategies[request.strategy];
      if (strategy === undefined) throw new InvalidFieldError("strategy", `is not a known strategy: ${request.strategy}`);
      const record = state.select({
        serviceName: request.serviceName,
        ...(request.region !== undefined ? { region: request.region } : {}),
        strategy,
      });
      return record === undefined ? {} : { instance: renderInstance(record) };
    },

    staleInstances(request) {
      if (request.serviceName !== "") validateServiceName(request.serviceName, "service_name");
      return { instances: state.staleInstances(request.serviceName || undefined).map(renderInstance) };
    },

    serviceTopology() {
      const services: Record<string, { regions: Record<string, { instances: number; healthy: number }> }> = {};
      for (const [service, regions] of state.topology()) {
        services[service] = { regions: Object.fromEntries(regions) };
      }
      return { services, selfPreservation: state.selfPreservation, revision: BigInt(store.log.currentRevision) };
    },

    async healthCheckSweep(request) {
      if (request.results.length > maxSweepResults) {
        throw new InvalidFieldError("results", `must have at most ${maxSweepResults} entries, got ${request.results.length}`);
      }
      const threshold = request.evictThreshold ?? 3;
      if (threshold < 1) throw new InvalidFieldError("evict_threshold", `must be >= 1, got ${threshold}`);
      const inputs = request.results.map((message, i) => {
        const input = healthInput(message, `results[${i}]`);
        validateHealthInput(input, `results[${i}]`);
        return input;
      });
      const { result, revision } = await store.sweep(inputs, threshold);
      return { evictedInstanceIds: result.evicted, revision: BigInt(revision) };
    },

    failoverCandidates(request) {
      validateServiceName(request.serviceName, "service_name");
      request.excludeRegions.forEach((region, i) => validateRegion(region, `exclude_regions[${i}]`));
      return { instances: state.failoverCandidates(request.serviceName, request.excludeRegions).map(renderInstance) };
    },

    watchTopology(request, ctx) {
      if (request.serviceNames.length > maxWatchedServices) {
        throw new InvalidFieldError("service_names", `must have at most ${maxWatchedServices} entries, got ${request.serviceNames.length}`);
      }
      request.serviceNames.forEach((name, i) => validateServiceName(name, `service_names[${i}]`));
      const names = request.serviceNames.length > 0 ? new Set(request.serviceNames) : undefined;
      return streamWatch(
        hub,
        {
          startRevision: request.startRevision,
          matches: names === undefined ? () => true : (event: TopologyEvent) => names.has(event.record.instance.serviceName),
          filterKey: names === undefined ? "" : [...names].sort().join("\n"),
          snapshot: () => state.records(names),
          signal: ctx.signal,
        },
        {
          *snapshot(message) {
            const chunks = chunkBySize(message.snapshot, options.snapshotChunkBytes);
            for (const [i, chunk] of chunks.entries()) {
              yield create(WatchTopologyResponseSchema, {
                message: {
                  case: "snapshot",
                  value: {
                    revision: BigInt(message.revision),
                    instances: chunk.map(renderInstance),
                    reset: message.reset,
                    more: i < chunks.length - 1,
                  },
                },
              });
            }
          },
          change: renderChange,
          progress: (revision) => create(WatchTopologyResponseSchema, { message: { case: "progress", value: { revision } } }),
        },
      );
    },
  });
}

/** Most distinct Resolve queries whose answers are kept. */
const maxCachedResolveQueries = 10_000;

/**
 * The last answer per Resolve query, reused while the query matches the
 * very same record objects at the same revision. Records are immutable and
 * replaced on every change (heartbeats included), so identity equality means
 * nothing changed; the answer is then also encoded once on the gRPC port.
 */
class ResolveAnswerCache {
  private readonly answers = new Map<string, { records: InstanceRecord[]; revision: number; response: ResolveResponse }>();

  answer(query: ResolveQuery, records: InstanceRecord[], revision: number): ResolveResponse {
    const key = `${query.serviceName}\n${query.region ?? ""}\n${query.healthyOnly}\n${query.minWeight}`;
    const cached = this.answers.get(key);
    if (cached !== undefined && cached.revision === revision && sameRecords(cached.records, records)) return cached.response;
    const response = shareEncoding(
      create(ResolveResponseSchema, { instances: records.map(renderInstance), revision: BigInt(revision) }),
    );
    if (this.answers.size >= maxCachedResolveQueries) this.answers.clear();
    this.answers.set(key, { records, revision, response });
    return response;
  }
}

function sameRecords(a: readonly InstanceRecord[], b: readonly InstanceRecord[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Splits snapshot records into chunks whose estimated encoding stays under
 * `budgetBytes` (at least one record per chunk; always at least one chunk, so
 * an empty snapshot is still one message).
 */
function chunkBySize(records: readonly InstanceRecord[], budgetBytes: number): InstanceRecord[][] {
  const chunks: InstanceRecord[][] = [[]];
  let size = 0;
  for (const record of records) {
    const estimate = estimatedSize(record);
    const current = chunks[chunks.length - 1]!;
    if (current.length > 0 && size + estimate > budgetBytes) {
      chunks.push([record]);
      size = estimate;
    } else {
      current.push(record);
      size += estimate;
    }
  }
  return chunks;
}

/** A generous upper bound of a record's encoded InstanceState size. */
function estimatedSize(record: InstanceRecord): number {
  const { instance, health } = record;
  let bytes = 192 + instance.instanceId.length + instance.serviceName.length + instance.endpoint.length;
  bytes += instance.region.length + instance.zone.length + (health?.reason?.length ?? 0);
  for (const [key, value] of Object.entries(instance.metadata)) bytes += 8 + Buffer.byteLength(key) + Buffer.byteLength(value);
  return bytes;
}
