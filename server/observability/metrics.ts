import { Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { RpcMetrics } from "./rpc-metrics.js";

/**
 * The server's Prometheus metrics, in their own registry so that several
 * servers in one process (tests) do not share counters.
 *
 * gRPC metric names and labels follow go-grpc-prometheus, which dashboards
 * and alerts already expect (see ./rpc-metrics.ts).
 */
export interface ServerMetrics {
  readonly registry: Registry;
  /** gRPC server metrics per method, fed by the edge's instrumentation. */
  readonly rpc: RpcMetrics;
  /** Duration of one SQLite group-commit transaction. */
  readonly commitSeconds: Histogram;
  /** Writes coalesced into one SQLite transaction. */
  readonly commitBatchSize: Histogram;
}

/** Creates the metrics registry with process metrics (CPU, RSS, heap, event loop lag). */
export function createServerMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    rpc: new RpcMetrics(registry),
    commitSeconds: new Histogram({
      name: "latticeforge_sqlite_commit_seconds",
      help: "Duration of one SQLite group-commit transaction (BEGIN to COMMIT).",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    commitBatchSize: new Histogram({
      name: "latticeforge_sqlite_commit_batch_size",
      help: "Number of writes coalesced into one SQLite transaction.",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
      registers: [registry],
    }),
  };
}

/** What the registry and watch gauges read at scrape time. */
export interface RegistryGaugeSource {
  readonly instances: () => number;
  readonly selfPreservation: () => boolean;
  readonly revision: () => number;
  readonly watchers: () => number;
  readonly unsyncedWatchers: () => number;
}

/**
 * Registers the registry's gauges, read at scrape time: instances, whether
 * self-preservation holds, the current topology revision, and topology
 * watchers (all, and those catching up from the event log).
 */
export function registerRegistryGauges(registry: Registry, source: RegistryGaugeSource): void {
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  gauge("latticeforge_registry_instances", "Registered instances.", source.instances);
  gauge("latticeforge_registry_self_preservation", "1 while self-preservation holds back stale evictions.", () =>
    source.selfPreservation() ? 1 : 0,
  );
  gauge("latticeforge_registry_revision", "Current topology revision.", source.revision);
  gauge("latticeforge_topology_watchers", "Open WatchTopology streams.", source.watchers);
  gauge("latticeforge_topology_unsynced_watchers", "WatchTopology streams catching up from the event log.", source.unsyncedWatchers);
}
