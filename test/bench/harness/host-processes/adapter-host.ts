/**
 * The adapter host (forked, never imported): the full edge stack of the gRPC
 * port — `createGrpcServer` over `instrumentService` with real metrics and a
 * silent logger — around a trivial Health service whose `check` returns the
 * same constant response as the ceiling. What it costs beyond the ceiling is
 * the adapter and the instrumentation, nothing else.
 */
import { create } from "@bufbuild/protobuf";
import { Health, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../../../../gen/grpc/health/v1/health_pb.js";
import { createLogger } from "../../../../server/observability/logger.js";
import { createServerMetrics } from "../../../../server/observability/metrics.js";
import { registerService } from "../../../../server/rpc/service-registration.js";
import { createGrpcServer } from "../../../../server/transport/grpc-server.js";
import { instrumentService } from "../../../../server/transport/instrument.js";
import { serveLocally } from "./grpc-local.js";
import { runHost } from "./run-host.js";

const serving = create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });

runHost(() => {
  const shutdownSignal = new AbortController().signal;
  const trivial = registerService(Health, {
    check: () => serving,
    list: () => {
      throw new Error("the adapter bench host serves Check only");
    },
    async *watch() {
      throw new Error("the adapter bench host serves Check only");
    },
  });
  const instrumented = instrumentService(trivial, {
    metrics: createServerMetrics(),
    logger: createLogger({ level: "silent", pretty: false }),
    shutdownSignal,
  });
  return serveLocally(createGrpcServer([instrumented], { maxMessageBytes: 4 * 1024 * 1024, shutdownSignal }));
});
