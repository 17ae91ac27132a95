import { registerXdsMetrics } from "../observability/metrics.js";
import { createXdsServices } from "../rpc/xds.js";
import { AdsServer, type AdjustXdsResource } from "../xds/ads-server.js";
import type { RegistryModule } from "./registry.js";
import type { AssemblyContext, ServiceModule } from "./service-module.js";

/**
 * The xDS server: the registry served over ADS to Envoy and gRPC xDS
 * clients (following the registry's topology hub), the client-status
 * listing and its metrics. It has no store or background work of its own;
 * its streams end when the registry's hub closes.
 */
export function assembleXds(
  { metrics, logger }: AssemblyContext,
  registry: RegistryModule,
  adjustResource?: AdjustXdsResource,
): ServiceModule {
  const ads = new AdsServer({
    store: registry.store,
    hub: registry.hub,
    logger,
    ...(adjustResource !== undefined ? { adjustResource } : {}),
  });
  registerXdsMetrics(metrics.registry, {
    streams: () => ads.streamCount,
    counters: () => ads.counters,
    skippedEndpoints: () => ads.skippedEndpointCount,
  });
  return {
    registrations: createXdsServices(ads, () => registry.store.log.currentRevision),
    routes: new Map(),
    stop() {},
  };
}
