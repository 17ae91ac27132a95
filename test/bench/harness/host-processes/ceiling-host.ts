/**
 * The ceiling host (forked, never imported): a bare grpc-js `Server` whose
 * only handler answers `grpc.health.v1.Health/Check` with a constant SERVING
 * response through the protobuf-es serializers. No adapter, no
 * instrumentation, no store: the fastest this stack can answer a unary call
 * on this machine, which every bench measures in the same run.
 */
import { create } from "@bufbuild/protobuf";
import { Server, type sendUnaryData } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../../../client/grpc-definition.js";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
  type HealthCheckResponse,
} from "../../../../gen/grpc/health/v1/health_pb.js";
import { serveLocally } from "./grpc-local.js";
import { runHost } from "./run-host.js";

const serving = create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });

runHost(() => {
  const server = new Server();
  server.addService(grpcServiceDefinition(Health), {
    check: (_call: unknown, callback: sendUnaryData<HealthCheckResponse>) => callback(null, serving),
  });
  return serveLocally(server);
});
