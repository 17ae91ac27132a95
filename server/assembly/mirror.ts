import { rootCertificates } from "node:tls";
import { defaultMirrorLimits } from "../core/mirror/model.js";
import { registerMirrorMetrics } from "../observability/metrics.js";
import { createMirrorService } from "../rpc/mirror.js";
import { Dispatcher } from "../shadow/dispatcher.js";
import { createHttpShadowClient } from "../shadow/http-shadow-client.js";
import { MirrorStore, type MirrorEvent } from "../store/mirror-store.js";
import { runPeriodically } from "../store/periodic-task.js";
import { WatchHub } from "../watch/watch-hub.js";
import type { AssemblyContext, ServiceModule } from "./service-module.js";

/**
 * The Mirror service: its store (configs, counters and diff tallies in
 * memory and SQLite, durable buffers), the mirror-config watch hub, the
 * dispatcher with its keep-alive shadow client, metrics, and compaction of
 * the configuration history.
 *
 * @param shadowCa PEM CA certificates HTTPS shadows may also chain to (`--shadow-tls-ca`)
 */
export function assembleMirror({ config, db, reader, committer, metrics, logger }: AssemblyContext, shadowCa?: Buffer): ServiceModule {
  const now = Date.now;
  const limits = defaultMirrorLimits({ maxMirrors: config.maxMirrors });
  const store = new MirrorStore(db, committer, { limits, now, reader });
  const hub = new WatchHub<MirrorEvent>(store.log, {
    progressIntervalMs: config.watchProgressSeconds * 1000,
    queueSize: config.watchQueueSize,
  });
  store.onChange((change) => hub.notify(change));
  const shadowClient = createHttpShadowClient(shadowCa === undefined ? {} : { ca: [...rootCertificates, shadowCa.toString("utf8")].join("\n") });
  const dispatcher = new Dispatcher(store, shadowClient, { now });
  registerMirrorMetrics(metrics.registry, {
    mirrors: () => store.mirrors().length,
    pending: () => store.pendingCount(),
    revision: () => store.log.currentRevision,
    watchers: () => hub.watcherCount,
  });
  const compaction = runPeriodically(
    "mirror: config history compaction",
    config.compactIntervalSeconds * 1000,
    async () => {
      const removed = await store.compact(config.historyChanges, config.historySeconds * 1000);
      if (removed > 0) logger.debug({ removed }, "mirror: config history compacted");
    },
    logger,
  );
  return {
    registrations: [createMirrorService({ store, hub, dispatcher, limits, now })],
    routes: new Map(),
    stop() {
      compaction.stop();
      hub.close();
      shadowClient.close();
    },
  };
}
