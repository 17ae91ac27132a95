import type { Logger } from "../observability/logger.js";
import { runPeriodically, type PeriodicTask } from "./periodic-task.js";
import type { RegistryStore } from "./registry-store.js";

/** Periods and retention for {@link startRegistryMaintenance}. */
export interface RegistryMaintenanceOptions {
  readonly reapIntervalMs: number;
  /** How often the topology revision log is compacted. */
  readonly compactIntervalMs: number;
  readonly keepChanges: number;
  readonly keepAgeMs: number;
  readonly logger: Logger;
}

/**
 * The registry's background work: a staleness pass every `reapIntervalMs`
 * (marking stale, evicting long-stale instances unless self-preservation
 * holds) and revision-log compaction, each a {@link runPeriodically} task.
 *
 * @returns the tasks as one: stop cancels both timers
 */
export function startRegistryMaintenance(store: RegistryStore, options: RegistryMaintenanceOptions): PeriodicTask {
  const { logger } = options;
  let preserving = store.state.selfPreservation;
  const reap = runPeriodically(
    "registry: staleness pass",
    options.reapIntervalMs,
    async () => {
      const { result, revision } = await store.reap();
      if (result.selfPreservation !== preserving) {
        preserving = result.selfPreservation;
        if (preserving) {
          logger.warn("registry: self-preservation engaged: too many instances went stale at once; evicting none until heartbeats recover");
        } else logger.info("registry: self-preservation released: heartbeats recovered");
      }
      if (result.evicted > 0) logger.info({ evicted: result.evicted, revision }, "registry: evicted stale instances");
    },
    logger,
  );
  const compact = runPeriodically(
    "registry: topology history compaction",
    options.compactIntervalMs,
    async () => {
      const removed = await store.compact(options.keepChanges, options.keepAgeMs);
      if (removed > 0) logger.debug({ removed }, "registry: topology history compacted");
    },
    logger,
  );
  return {
    stop() {
      reap.stop();
      compact.stop();
    },
  };
}
