import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { offloadSpecOf, type AnyOffloadSpec } from "./offloaded-decoding.js";
import { offloadSpecs } from "./offload-specs.js";

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
  /**
   * Methods (by `localName`) whose handler was built with `offloadable` or
   * `offloadableStream` and also accepts `EncodedRequest`s, with their
   * specs: the gRPC port may hand them request bytes for a decode worker.
   */
  readonly offloaded?: ReadonlyMap<string, AnyOffloadSpec>;
}

/**
 * Pairs a service descriptor with its implementation, checking the
 * implementation against the descriptor at compile time, and notes which
 * handlers are offloadable.
 *
 * @throws Error when an offloadable handler's spec is not in `offloadSpecs`
 *   (the decode workers could not find it)
 */
export function registerService<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
): ServiceRegistration {
  const offloaded = new Map<string, AnyOffloadSpec>();
  for (const method of service.methods) {
    const spec = offloadSpecOf((impl as Record<string, unknown>)[method.localName]);
    if (spec === undefined) continue;
    if (offloadSpecs.get(spec.path) !== spec) throw new Error(`the offload spec of ${spec.path} is not listed in offloadSpecs`);
    offloaded.set(method.localName, spec);
  }
  return { service, impl, ...(offloaded.size > 0 ? { offloaded } : {}) } as unknown as ServiceRegistration;
}
