import { create, fromBinary } from "@bufbuild/protobuf";
import type { ClientReadableStream } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../../client/grpc-definition.js";
import { RegistryService, WatchTopologyRequestSchema } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { WatchTopologyRevisionSchema, type WatchTopologyRevision } from "../gen/latticeforge/bench/v1/revision_views_pb.js";
import type { WatchScenario } from "../harness/watch-scenario.js";

const method = grpcServiceDefinition(RegistryService).watchTopology!;
/** Every service, from a snapshot: what a proxy holding the whole topology asks for. */
const request = create(WatchTopologyRequestSchema, { startRevision: 0n });
const decode = (bytes: Buffer): WatchTopologyRevision => fromBinary(WatchTopologyRevisionSchema, bytes, { readUnknownFields: false });

/**
 * `WatchTopology` of everything from a snapshot. The snapshot establishes
 * the watch; each change reports its revision; progress messages are
 * ignored. Responses are decoded through a view that skips the instances.
 */
const watch: WatchScenario = {
  open(channel, sink) {
    const call = channel.makeServerStreamRequest(method.path, method.requestSerialize, decode, request) as ClientReadableStream<WatchTopologyRevision>;
    call.on("data", (response: WatchTopologyRevision) => {
      const { message } = response;
      if (message.case === "snapshot") sink.ready();
      else if (message.case === "change") sink.delivered(Number(message.value.revision));
    });
    call.on("error", (error: Error) => sink.failed(error));
    call.on("end", () => sink.failed(new Error("stream ended")));
    return () => call.cancel();
  },
};

export default watch;

/** URL of this module, for bench targets that use it. */
export const registryWatchScenario = import.meta.url;
