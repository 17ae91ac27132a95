import type { Logger } from "../observability/logger.js";
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
 * holds) and revision-log compaction. Passes never overlap; a failed pass is
 * logged and the next one runs on schedule.
 *
 * @returns stop, which cancels the timers (an in-flight pass still completes)
 */
export function startRegistryMaintenance(store: RegistryStore, options: RegistryMaintenanceOptions): { stop(): void } {
  const { logger } = options;
  let reaping = false;
  let preserving = store.state.selfPreservation;
  const reap = (): void => {
    if (reaping) return;
    reaping = true;
    store
      .reap()
      .then(({ result, revision }) => {
        if (result.selfPreservation !== preserving) {
          preserving = result.selfPreservation;
          if (preserving) {
            logger.warn("registry: self-preservation engaged: too many instances went stale at once; evicting none until heartbeats recover");
          } else logger.info("registry: self-preservation released: heartbeats recovered");
        }
        if (result.evicted > 0) logger.info({ evicted: result.evicted, revision }, "registry: evicted stale instances");
      })
      .catch((error: unknown) => logger.error({ err: error }, "registry: staleness pass failed"))
      .finally(() => {
        reaping = false;
      });
  };
  const compact = (): void => {
    store
      .compact(options.keepChanges, options.keepAgeMs)
      .then((removed) => {
        if (removed > 0) logger.debug({ removed }, "registry: topology history compacted");
      })
      .catch((error: unknown) => logger.error({ err: error }, "registry: topology history compaction failed"));
  };
  const reapTimer = setInterval(reap, options.reapIntervalMs);
  const compactTimer = setInterval(compact, options.compactIntervalMs);
  reapTimer.unref();
  compactTimer.unref();
  return {
    stop() {
      clearInterval(reapTimer);
      clearInterval(compactTimer);
    },
  };
}
