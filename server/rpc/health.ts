import { create } from "@bufbuild/protobuf";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
  HealthCheckResponseSchema,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { LimitExceededError, NotFoundError } from "../core/errors.js";
import type { ServingState, ServingStatus } from "../core/serving-status.js";
import { Wakeup } from "../watch/wakeup.js";
import { registerService, type ServiceRegistration } from "./service-registration.js";

/** The health protocol's limit on List answers. */
const maxListedServices = 100;

const statusOf: Record<ServingState, Status> = { serving: Status.SERVING, not_serving: Status.NOT_SERVING };

/**
 * `grpc.health.v1.Health` over the server's {@link ServingStatus}: Check,
 * List and Watch as the gRPC health-checking protocol specifies them.
 */
export function createHealthService(serving: ServingStatus): ServiceRegistration {
  const responses: Record<Status, HealthCheckResponse> = {
    [Status.UNKNOWN]: create(HealthCheckResponseSchema, { status: Status.UNKNOWN }),
    [Status.SERVING]: create(HealthCheckResponseSchema, { status: Status.SERVING }),
    [Status.NOT_SERVING]: create(HealthCheckResponseSchema, { status: Status.NOT_SERVING }),
    [Status.SERVICE_UNKNOWN]: create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN }),
  };
  const current = (service: string): Status => {
    const state = serving.get(service);
    return state === undefined ? Status.SERVICE_UNKNOWN : statusOf[state];
  };
  return registerService(Health, {
    check(request) {
      const state = serving.get(request.service);
      if (state === undefined) throw new NotFoundError(`service "${request.service}" is not served here`);
      return responses[statusOf[state]];
    },
    list() {
      const statuses: Record<string, HealthCheckResponse> = {};
      let count = 0;
      for (const [service, state] of serving.entries()) {
        if (++count > maxListedServices) {
          throw new LimitExceededError(`more than ${maxListedServices} services; use Check per service`);
        }
        statuses[service] = responses[statusOf[state]];
      }
      return { statuses };
    },
    async *watch(request, ctx) {
      const wake = new Wakeup(ctx.signal);
      const unsubscribe = serving.subscribe((service) => {
        if (service === request.service) wake.wake();
      });
      try {
        // The status is compared once more after an abort, so a watcher
        // sees NOT_SERVING before shutdown ends its stream.
        let sent: Status | undefined;
        for (;;) {
          const status = current(request.service);
          if (status !== sent) {
            sent = status;
            yield responses[status];
          }
          if (ctx.signal.aborted) return;
          await wake.wait();
        }
      } finally {
        unsubscribe();
      }
    },
  });
}
