import { Code, ConnectError } from "@connectrpc/connect";
import { AggregatedDiscoveryService } from "../../gen/envoy/service/discovery/v3/ads_pb.js";
import type { DiscoveryRequest } from "../../gen/envoy/service/discovery/v3/discovery_pb.js";
import { XdsAdminService } from "../../gen/latticeforge/xds/v1/xds_pb.js";
import type { AdsServer } from "../xds/ads-server.js";
import { registerService, type ServiceRegistration } from "./service-registration.js";
import { adsRequestFromProto, xdsClientToProto } from "./xds-mapping.js";

async function* adsRequests(requests: AsyncIterable<DiscoveryRequest>) {
  for await (const request of requests) yield adsRequestFromProto(request);
}

/**
 * The xDS services: Envoy's AggregatedDiscoveryService (state of the world;
 * the incremental variant answers UNIMPLEMENTED, as gRPC's xDS clients never
 * use it) and LatticeForge's XdsAdminService listing connected clients.
 */
export function createXdsServices(ads: AdsServer, currentRevision: () => number): ServiceRegistration[] {
  return [
    registerService(AggregatedDiscoveryService, {
      streamAggregatedResources: (requests, ctx) => ads.stream(adsRequests(requests), ctx.signal),
      async *deltaAggregatedResources() {
        throw new ConnectError(
          "incremental (delta) xDS is not served; use StreamAggregatedResources (state of the world)",
          Code.Unimplemented,
        );
      },
    }),
    registerService(XdsAdminService, {
      listClients(request) {
        const clients = ads.clients().filter((c) => request.nodeId === "" || c.node?.id === request.nodeId);
        return { clients: clients.map(xdsClientToProto), revision: BigInt(currentRevision()) };
      },
    }),
  ];
}
