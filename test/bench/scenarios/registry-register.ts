import { create } from "@bufbuild/protobuf";
import { RegisterRequestSchema, RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { instanceRecord } from "./registry-records.js";

/**
 * `Register` of a new ~300-byte instance per call, spread over 100 services
 * (see `instanceRecord`); needs a host whose per-service limit exceeds what a
 * run registers.
 */
const register: LoadScenario = {
  service: RegistryService,
  method: "register",
  request: (sequence, client) => create(RegisterRequestSchema, { instance: instanceRecord(client, sequence) }),
};

export default register;

/** URL of this module, for bench targets that use it. */
export const registerScenario = import.meta.url;
