import { KV } from "../gen/etcdserverpb/rpc_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { etcdPut, instanceRecord } from "./registry-records.js";

/** etcd's peer of `registry-register`: a PUT of the same record as JSON under `/registry/<service>/<id>`. */
const put: LoadScenario = {
  service: KV,
  method: "put",
  request: (sequence, client) => etcdPut(instanceRecord(client, sequence)),
};

export default put;

/** URL of this module, for bench targets that use it. */
export const etcdPutScenario = import.meta.url;
