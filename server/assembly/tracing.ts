import type { AnomalyEvent } from "../core/tracing/anomalies.js";
import { defaultCollectorLimits } from "../core/tracing/model.js";
import { registerTracingMetrics } from "../observability/metrics.js";
import { createOtlpTraceService } from "../rpc/otlp-trace.js";
import { createTracingService } from "../rpc/tracing.js";
import { startTracingMaintenance } from "../store/tracing-maintenance.js";
import { TracingStore } from "../store/tracing-store.js";
import { createOtlpHttpRoutes } from "../transport/otlp-http.js";
import { WatchHub } from "../watch/watch-hub.js";
import type { AssemblyContext, ServiceModule } from "./service-module.js";

/**
 * The TraceCollector service and OTLP trace ingestion (gRPC
 * `TraceService/Export` and OTLP/HTTP `POST /v1/traces`) over one span
 * store with the anomaly revision log, the anomaly watch hub, metrics, and
 * the pruning and compaction passes.
 */
export function assembleTracing({ config, db, reader, committer, metrics, logger, decoder }: AssemblyContext): ServiceModule {
  const now = Date.now;
  const limits = defaultCollectorLimits({
    maxSpansPerTrace: config.maxSpansPerTrace,
    traceTtlMs: config.traceTtlSeconds * 1000,
    anomalyThresholdMs: config.anomalyThresholdMs,
    anomalyMinErrorCount: config.anomalyMinErrors,
    serviceSlosMs: config.serviceSlosMs,
  });
  const store = new TracingStore(db, committer, { limits, reader });
  const hub = new WatchHub<AnomalyEvent>(store.anomalyLog, {
    progressIntervalMs: config.watchProgressSeconds * 1000,
    queueSize: config.watchQueueSize,
  });
  store.onAnomalies((change) => hub.notify(change));
  registerTracingMetrics(metrics.registry, {
    spans: () => store.spanCounts,
    prunedTraces: () => store.prunedTraces,
    anomalyRevision: () => store.anomalyLog.currentRevision,
    watchers: () => hub.watcherCount,
    unsyncedWatchers: () => hub.unsyncedCount,
  });
  const maintenance = startTracingMaintenance(store, {
    pruneIntervalMs: config.pruneIntervalSeconds * 1000,
    traceTtlMs: limits.traceTtlMs,
    compactIntervalMs: config.compactIntervalSeconds * 1000,
    keepChanges: config.historyChanges,
    keepAgeMs: config.historySeconds * 1000,
    now,
    logger,
  });
  return {
    registrations: [createTracingService({ store, hub, limits, now }), createOtlpTraceService({ store, now })],
    routes: createOtlpHttpRoutes({ store, now, maxBodyBytes: config.maxMessageBytes, logger, decoder }),
    stop() {
      maintenance.stop();
      hub.close();
    },
  };
}
