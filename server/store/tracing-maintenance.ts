import type { Logger } from "../observability/logger.js";
import { runPeriodically, type PeriodicTask } from "./periodic-task.js";
import type { TracingStore } from "./tracing-store.js";


/** Periods and retention for {@link startTracingMaintenance}. */
export interface TracingMaintenanceOptions {
  readonly pruneIntervalMs: number;
  readonly traceTtlMs: number;
  /** How often the anomaly revision log is compacted. */
  readonly compactIntervalMs: number;
  readonly keepChanges: number;
  readonly keepAgeMs: number;
  readonly now: () => number;
  readonly logger: Logger;
}

/**
 * The trace collector's background work, each a {@link runPeriodically}
 * task: removing expired traces in small transactions (so ingestion commits
 * between them instead of waiting for the pass) and compacting the anomaly
 * revision log.
 *
 * @returns the tasks as one: stop cancels both timers
 */
export function startTracingMaintenance(store: TracingStore, options: TracingMaintenanceOptions): PeriodicTask {
  const { logger } = options;
  const prune = runPeriodically(
    "tracing: pruning expired traces",
    options.pruneIntervalMs,
    async () => {
      const pruned = await store.pruneExpired(options.now(), options.traceTtlMs);
      if (pruned > 0) logger.debug({ pruned }, "tracing: expired traces pruned");
    },
    logger,
  );
  const compact = runPeriodically(
    "tracing: anomaly history compaction",
    options.compactIntervalMs,
    async () => {
      const removed = await store.compactAnomalies(options.keepChanges, options.keepAgeMs, options.now());
      if (removed > 0) logger.debug({ removed }, "tracing: anomaly history compacted");
    },
    logger,
  );
  return {
    stop() {
      prune.stop();
      compact.stop();
    },
  };
}
