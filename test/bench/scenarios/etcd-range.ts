import { create } from "@bufbuild/protobuf";
import { KV, RangeRequestSchema, type RangeResponse } from "../gen/etcdserverpb/rpc_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { etcdPrefixRange, etcdRoot, resolveService } from "./registry-records.js";

/** Linearizable (etcd's default), like a LatticeForge read, which always reflects every acknowledged write. */
const request = create(RangeRequestSchema, etcdPrefixRange(`${etcdRoot}${resolveService}/`));

const decoder = new TextDecoder();

/**
 * etcd's peer of `registry-resolve`: a prefix range read returning the
 * service's 100 values, which the client parses from JSON, as any user of
 * them must (the LatticeForge client gets decoded records from protobuf).
 */
const range: LoadScenario = {
  service: KV,
  method: "range",
  request: () => request,
  consume: (response) => {
    for (const kv of (response as RangeResponse).kvs) JSON.parse(decoder.decode(kv.value));
  },
};

export default range;

/** URL of this module, for bench targets that use it. */
export const etcdRangeScenario = import.meta.url;
