import { create } from "@bufbuild/protobuf";
import { Health, HealthCheckRequestSchema } from "../../../gen/grpc/health/v1/health_pb.js";
import type { LoadScenario } from "../harness/scenario.js";

const overall = create(HealthCheckRequestSchema, { service: "" });

/**
 * `grpc.health.v1.Health/Check` of the overall (`""`) status, the same
 * request every time: the cheapest call every host answers, and the
 * ceiling's only method.
 */
const healthCheck: LoadScenario = {
  service: Health,
  method: "check",
  request: () => overall,
};

export default healthCheck;

/** URL of this module, for bench targets that use it. */
export const healthCheckScenario = import.meta.url;
