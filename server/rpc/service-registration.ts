import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";

/**
 * One service as both transports serve it: the generated descriptor and the
 * handlers written once in connect-es `ServiceImpl` style (unary = async
 * function, server stream = async generator, errors thrown as typed values).
 *
 * The gRPC port (grpc-js) and the HTTP port (connect-node) are fed from the
 * same list of registrations, so a service can never be served by one
 * transport and forgotten by the other.
 */
export interface ServiceRegistration<S extends DescService = DescService> {
  readonly service: S;
  readonly impl: ServiceImpl<S>;
}

/**
 * Pairs a service descriptor with its implementation, checking the
 * implementation against the descriptor at compile time.
 */
export function registerService<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
): ServiceRegistration {
  return { service, impl } as unknown as ServiceRegistration;
}
