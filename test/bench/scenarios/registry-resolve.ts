import { create } from "@bufbuild/protobuf";
import { RegistryService, ResolveRequestSchema } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { resolveService } from "./registry-records.js";

const request = create(ResolveRequestSchema, { serviceName: resolveService });

/** `Resolve` of the one service the bench registered 100 instances in (healthy only, the default). */
const resolve: LoadScenario = {
  service: RegistryService,
  method: "resolve",
  request: () => request,
};

export default resolve;

/** URL of this module, for bench targets that use it. */
export const resolveScenario = import.meta.url;
