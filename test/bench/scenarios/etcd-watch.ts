import { create, fromBinary } from "@bufbuild/protobuf";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../../client/grpc-definition.js";
import { Watch, WatchRequestSchema, type WatchRequest } from "../gen/etcdserverpb/rpc_pb.js";
import { EtcdWatchRevisionsSchema, type EtcdWatchRevisions } from "../gen/latticeforge/bench/v1/revision_views_pb.js";
import type { WatchScenario } from "../harness/watch-scenario.js";
import { etcdPrefixRange, etcdRoot } from "./registry-records.js";

const method = grpcServiceDefinition(Watch).watch!;
const createWatch = create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: etcdPrefixRange(etcdRoot) } });
const decode = (bytes: Buffer): EtcdWatchRevisions => fromBinary(EtcdWatchRevisionsSchema, bytes, { readUnknownFields: false });

/**
 * etcd's peer of `registry-watch`: one `Watch` stream per watcher (as one
 * proxy would hold), each with one prefix watch on `/registry/`. `created`
 * establishes it; each event reports its `mod_revision`. Responses are
 * decoded through a view that skips keys and values.
 */
const watch: WatchScenario = {
  open(channel, sink) {
    const call = channel.makeBidiStreamRequest(method.path, method.requestSerialize, decode) as ClientDuplexStream<WatchRequest, EtcdWatchRevisions>;
    call.on("data", (response: EtcdWatchRevisions) => {
      if (response.created) sink.ready();
      if (response.canceled) sink.failed(new Error(`watch canceled: ${response.cancelReason}`));
      for (const event of response.events) sink.delivered(Number(event.kv?.modRevision ?? 0n));
    });
    call.on("error", (error: Error) => sink.failed(error));
    call.on("end", () => sink.failed(new Error("stream ended")));
    call.write(createWatch);
    return () => call.cancel();
  },
};

export default watch;

/** URL of this module, for bench targets that use it. */
export const etcdWatchScenario = import.meta.url;
