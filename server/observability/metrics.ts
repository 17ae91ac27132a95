import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
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

/** One registered instance's health-aware routing state, as the registry gauges report it. */
export interface InstanceRoutingSample {
  readonly serviceName: string;
  readonly instanceId: string;
  readonly healthScore: number;
  /** The weight selection and xDS give it, unrounded (a warming weight-1 instance starts at 0.1); 0 while not routable. */
  readonly effectiveWeight: number;
  readonly degraded: boolean;
  readonly warmingUp: boolean;
}

/** What the registry and watch gauges read at scrape time. */
export interface RegistryGaugeSource {
  readonly instances: () => number;
  readonly selfPreservation: () => boolean;
  readonly revision: () => number;
  readonly watchers: () => number;
  readonly unsyncedWatchers: () => number;
  /** Every registered instance's routing state. */
  readonly routing: () => Iterable<InstanceRoutingSample>;
}

/**
 * Registers the registry's gauges, read at scrape time: instances, whether
 * self-preservation holds, the current topology revision, topology watchers
 * (all, and those catching up from the event log), per-instance health
 * score and effective weight (labelled `service` and `instance_id`), and
 * the degraded and warming-up instance counts.
 */
export function registerRegistryGauges(registry: Registry, source: RegistryGaugeSource): void {
  scrapedGauge(registry, "latticeforge_registry_instances", "Registered instances.", source.instances);
  scrapedGauge(registry, "latticeforge_registry_self_preservation", "1 while self-preservation holds back stale evictions.", () =>
    source.selfPreservation() ? 1 : 0,
  );
  scrapedGauge(registry, "latticeforge_registry_revision", "Current topology revision.", source.revision);
  scrapedGauge(registry, "latticeforge_topology_watchers", "Watchers of the topology hub: WatchTopology streams and xDS (ADS) streams.", source.watchers);
  scrapedGauge(registry, "latticeforge_topology_unsynced_watchers", "WatchTopology streams catching up from the event log.", source.unsyncedWatchers);
  const perInstance = (name: string, help: string, value: (sample: InstanceRoutingSample) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ["service", "instance_id"],
      registers: [registry],
      collect() {
        this.reset();
        for (const sample of source.routing()) this.set({ service: sample.serviceName, instance_id: sample.instanceId }, value(sample));
      },
    });
  };
  perInstance("latticeforge_registry_instance_health_score", "Health score (0..1, EWMA of health checks and staleness) of each instance; below 0.3 it is degraded.", (s) => s.healthScore);
  perInstance("latticeforge_registry_instance_effective_weight", "Weight selection and xDS give each instance: its weight scaled by the warm-up ramp, unrounded; 0 while not routable.", (s) => s.effectiveWeight);
  const count = (predicate: (sample: InstanceRoutingSample) => boolean) => () => {
    let n = 0;
    for (const sample of source.routing()) if (predicate(sample)) n++;
    return n;
  };
  scrapedGauge(registry, "latticeforge_registry_degraded_instances", "Instances out of routing because their health score is below 0.3.", count((s) => s.degraded));
  scrapedGauge(registry, "latticeforge_registry_warming_instances", "Instances warming up (reduced weight) after becoming routable again.", count((s) => s.warmingUp));
}

/** What the trace collector's metrics read at scrape time. */
export interface TracingMetricsSource {
  /** Spans by ingest outcome since the process started. */
  readonly spans: () => { readonly ingested: number; readonly duplicates: number; readonly dropped: number };
  /** Traces removed by pruning since the process started. */
  readonly prunedTraces: () => number;
  readonly anomalyRevision: () => number;
  readonly watchers: () => number;
  readonly unsyncedWatchers: () => number;
}

/**
 * Registers the trace collector's metrics, read at scrape time: spans by
 * ingest outcome, pruned traces, the anomaly revision and anomaly watchers.
 */
export function registerTracingMetrics(registry: Registry, source: TracingMetricsSource): void {
  scrapedCounter(registry, "latticeforge_tracing_spans_total", "Spans received by ingest outcome: ingested, duplicate, or dropped (trace full or expired).", "outcome", () => {
    const { ingested, duplicates, dropped } = source.spans();
    return { ingested, duplicate: duplicates, dropped };
  });
  new Counter({
    name: "latticeforge_tracing_pruned_traces_total",
    help: "Expired traces removed with their spans.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(source.prunedTraces());
    },
  });
  scrapedGauge(registry, "latticeforge_tracing_anomaly_revision", "Current anomaly revision.", source.anomalyRevision);
  scrapedGauge(registry, "latticeforge_anomaly_watchers", "Open WatchAnomalies streams.", source.watchers);
  scrapedGauge(registry, "latticeforge_anomaly_unsynced_watchers", "WatchAnomalies streams catching up from the event log.", source.unsyncedWatchers);
}

/** What the decode workers' metrics read at scrape time. */
export interface DecodeMetricsSource {
  /** Requests decoded so far: inline (small ones) or in a worker. */
  readonly counts: () => { readonly inline: number; readonly worker: number };
  readonly inFlight: () => number;
}

/** Registers the decode workers' metrics (see `--decode-workers`). */
export function registerDecodeMetrics(registry: Registry, source: DecodeMetricsSource): void {
  scrapedCounter(registry, "latticeforge_decode_requests_total", "Offloadable requests (IngestBatch, OTLP Export) decoded, by where: inline (small) or worker.", "where", source.counts);
  scrapedGauge(registry, "latticeforge_decode_in_flight", "Requests the decode workers are decoding now.", source.inFlight);
}

/** What the mirror service's gauges read at scrape time. */
export interface MirrorMetricsSource {
  readonly mirrors: () => number;
  /** Buffered requests over all mirrors. */
  readonly pending: () => number;
  readonly revision: () => number;
  readonly watchers: () => number;
}

/** Registers the mirror service's gauges: mirrors, buffered requests, config revision, WatchMirrors streams. */
export function registerMirrorMetrics(registry: Registry, source: MirrorMetricsSource): void {
  scrapedGauge(registry, "latticeforge_mirrors", "Configured mirrors.", source.mirrors);
  scrapedGauge(registry, "latticeforge_mirror_pending_requests", "Captured requests buffered for dispatch, over all mirrors.", source.pending);
  scrapedGauge(registry, "latticeforge_mirror_config_revision", "Current mirror-config revision.", source.revision);
  scrapedGauge(registry, "latticeforge_mirror_watchers", "Open WatchMirrors streams.", source.watchers);
}

/** What the xDS server's metrics read at scrape time. */
export interface XdsMetricsSource {
  readonly streams: () => number;
  /** Totals since start per resource kind (listener, route, cluster, endpoint). */
  readonly counters: () => {
    readonly responses: Readonly<Record<string, number>>;
    readonly acks: Readonly<Record<string, number>>;
    readonly nacks: Readonly<Record<string, number>>;
  };
  readonly skippedEndpoints: () => number;
}

/**
 * Registers the xDS server's metrics: open ADS streams, responses, ACKs and
 * NACKs per resource type, and instances left out of EDS.
 */
export function registerXdsMetrics(registry: Registry, source: XdsMetricsSource): void {
  scrapedGauge(registry, "latticeforge_xds_streams", "Open ADS streams (connected xDS clients).", source.streams);
  scrapedCounter(registry, "latticeforge_xds_responses_total", "DiscoveryResponses sent, by resource type.", "type", () => source.counters().responses);
  scrapedCounter(registry, "latticeforge_xds_acks_total", "Responses clients accepted (ACK), by resource type.", "type", () => source.counters().acks);
  scrapedCounter(
    registry,
    "latticeforge_xds_nacks_total",
    "Responses clients rejected (NACK), by resource type; they keep their last accepted config.",
    "type",
    () => source.counters().nacks,
  );
  scrapedGauge(
    registry,
    "latticeforge_xds_skipped_endpoints",
    "Instances left out of served EDS load assignments: endpoint host not an IP address, or an address another instance has.",
    source.skippedEndpoints,
  );
}

/** A counter with one label whose totals (label value → total since start) are read at scrape time. */
function scrapedCounter(
  registry: Registry,
  name: string,
  help: string,
  label: string,
  read: () => Readonly<Record<string, number>>,
): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, total] of Object.entries(read())) this.inc({ [label]: value }, total);
    },
  });
}

/** A gauge whose value is read at scrape time. */
function scrapedGauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}
