import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * The server's Prometheus metrics, in their own registry so that several
 * servers in one process (tests) do not share counters.
 *
 * gRPC metric names and labels follow go-grpc-prometheus, which dashboards
 * and alerts already expect.
 */
export interface ServerMetrics {
  readonly registry: Registry;
  /** RPCs started, by grpc_type, grpc_service and grpc_method. */
  readonly started: Counter<"grpc_type" | "grpc_service" | "grpc_method">;
  /** RPCs completed, by grpc_type, grpc_service, grpc_method and grpc_code. */
  readonly handled: Counter<"grpc_type" | "grpc_service" | "grpc_method" | "grpc_code">;
  /** Time from start to completion of an RPC, by grpc_type, grpc_service and grpc_method. */
  readonly handlingSeconds: Histogram<"grpc_type" | "grpc_service" | "grpc_method">;
  /** Messages sent on server streams, by grpc_service and grpc_method. */
  readonly streamMessagesSent: Counter<"grpc_type" | "grpc_service" | "grpc_method">;
  /** Server streams open now, by grpc_service and grpc_method. */
  readonly openStreams: Gauge<"grpc_type" | "grpc_service" | "grpc_method">;
  /** Duration of one SQLite group-commit transaction. */
  readonly commitSeconds: Histogram;
  /** Writes coalesced into one SQLite transaction. */
  readonly commitBatchSize: Histogram;
}

/** Creates the metrics registry with process metrics (CPU, RSS, heap, event loop lag). */
export function createServerMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const rpcLabels = ["grpc_type", "grpc_service", "grpc_method"] as const;
  return {
    registry,
    started: new Counter({
      name: "grpc_server_started_total",
      help: "Total number of RPCs started on the server.",
      labelNames: rpcLabels,
      registers: [registry],
    }),
    handled: new Counter({
      name: "grpc_server_handled_total",
      help: "Total number of RPCs completed on the server, regardless of success or failure.",
      labelNames: [...rpcLabels, "grpc_code"],
      registers: [registry],
    }),
    handlingSeconds: new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Histogram of response latency (seconds) of RPCs handled by the server.",
      labelNames: rpcLabels,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    streamMessagesSent: new Counter({
      name: "grpc_server_msg_sent_total",
      help: "Total number of stream messages sent by the server.",
      labelNames: rpcLabels,
      registers: [registry],
    }),
    openStreams: new Gauge({
      name: "grpc_server_open_streams",
      help: "Number of server streams open now.",
      labelNames: rpcLabels,
      registers: [registry],
    }),
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
