import { defaultHealthScoring } from "../core/registry/health-score.js";
import { defaultRegistryLimits, routedWeight, type TopologyEvent } from "../core/registry/model.js";
import { registerRegistryGauges } from "../observability/metrics.js";
import { createRegistryService } from "../rpc/registry.js";
import { startRegistryMaintenance } from "../store/registry-maintenance.js";
import { RegistryStore } from "../store/registry-store.js";
import { WatchHub } from "../watch/watch-hub.js";
import type { AssemblyContext, ServiceModule } from "./service-module.js";

/** The assembled Registry, whose store and topology hub other modules (xDS) build on. */
export interface RegistryModule extends ServiceModule {
  readonly store: RegistryStore;
  readonly hub: WatchHub<TopologyEvent>;
}

/**
 * The Registry service: its store (instances in memory, persisted with the
 * topology revision log), the topology watch hub, gauges, and the reaper and
 * compaction passes.
 */
export function assembleRegistry({ config, db, reader, committer, metrics, logger }: AssemblyContext): RegistryModule {
  const store = new RegistryStore(db, committer, {
    reader,
    limits: defaultRegistryLimits({
      heartbeatTimeoutMs: config.heartbeatTimeoutSeconds * 1000,
      maxInstancesPerService: config.maxInstancesPerService,
      deregisterStaleAfterMs: config.deregisterStaleAfterSeconds * 1000,
      selfPreservationThreshold: config.selfPreservationThreshold,
    }),
    scoring: defaultHealthScoring({
      windowMs: config.healthWindowSeconds * 1000,
      latencyTargetMs: config.healthLatencyTargetMs,
      warmupMs: config.warmupSeconds * 1000,
    }),
  });
  const hub = new WatchHub<TopologyEvent>(store.log, {
    progressIntervalMs: config.watchProgressSeconds * 1000,
    queueSize: config.watchQueueSize,
  });
  store.onChange((change) => hub.notify(change));
  registerRegistryGauges(metrics.registry, {
    instances: () => store.state.size,
    selfPreservation: () => store.state.selfPreservation,
    revision: () => store.log.currentRevision,
    watchers: () => hub.watcherCount,
    unsyncedWatchers: () => hub.unsyncedCount,
    *routing() {
      for (const record of store.state.all()) {
        yield {
          serviceName: record.instance.serviceName,
          instanceId: record.instance.instanceId,
          healthScore: record.score.value,
          effectiveWeight: routedWeight(record),
          degraded: record.degraded,
          warmingUp: record.warmup !== undefined,
        };
      }
    },
  });
  const maintenance = startRegistryMaintenance(store, {
    reapIntervalMs: config.reapIntervalSeconds * 1000,
    compactIntervalMs: config.compactIntervalSeconds * 1000,
    keepChanges: config.historyChanges,
    keepAgeMs: config.historySeconds * 1000,
    logger,
  });
  return {
    store,
    hub,
    registrations: [
      createRegistryService(store, hub, { snapshotChunkBytes: Math.floor(config.maxMessageBytes / 2) }),
    ],
    routes: new Map(),
    stop() {
      maintenance.stop();
      hub.close();
    },
  };
}
