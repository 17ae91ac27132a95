import { create } from "@bufbuild/protobuf";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../../client/grpc-definition.js";
import { AggregatedDiscoveryService } from "../../../gen/envoy/service/discovery/v3/ads_pb.js";
import { DiscoveryRequestSchema, type DiscoveryRequest, type DiscoveryResponse } from "../../../gen/envoy/service/discovery/v3/discovery_pb.js";
import type { WatchScenario } from "../harness/watch-scenario.js";
import { serviceCount, serviceName } from "./registry-records.js";

const method = grpcServiceDefinition(AggregatedDiscoveryService).streamAggregatedResources!;
const edsType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/**
 * One xDS client's EDS subscription over ADS, as a gRPC xDS client holds it:
 * stream `n` asks for the endpoints of service `n % 100` (the registry
 * bench's record services), ACKs every response, and reports each response
 * after the first by its `version_info`, which is the registry revision of
 * the change it carries.
 */
const eds: WatchScenario = {
  open(channel, sink, stream) {
    const call = channel.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize) as ClientDuplexStream<
      DiscoveryRequest,
      DiscoveryResponse
    >;
    const resourceNames = [serviceName(stream % serviceCount)];
    let first = true;
    call.on("data", (response: DiscoveryResponse) => {
      if (first) {
        first = false;
        sink.ready();
      } else sink.delivered(Number(response.versionInfo));
      call.write(create(DiscoveryRequestSchema, { typeUrl: edsType, resourceNames, versionInfo: response.versionInfo, responseNonce: response.nonce }));
    });
    call.on("error", (error: Error) => sink.failed(error));
    call.on("end", () => sink.failed(new Error("stream ended")));
    call.write(
      create(DiscoveryRequestSchema, {
        node: { id: `bench-${stream}`, locality: { region: "us-east-1", zone: "us-east-1a" }, userAgentName: "latticeforge-bench" },
        typeUrl: edsType,
        resourceNames,
      }),
    );
    return () => call.cancel();
  },
  sees: (stream, write) => stream % serviceCount === write % serviceCount,
};

export default eds;

/** URL of this module, for bench targets that use it. */
export const xdsEdsScenario = import.meta.url;
