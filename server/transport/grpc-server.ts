import { create, isMessage, type DescMessage, type DescMethod, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  Server,
  ServerCredentials,
  status,
  type MethodDefinition,
  type ServerErrorResponse,
  type ServiceDefinition,
  type ServerWritableStream,
  type UntypedHandleCall,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../client/grpc-definition.js";
import { EncodedRequest, type RequestDecoder } from "../rpc/offloaded-decoding.js";
import type { ServiceRegistration } from "../rpc/service-registration.js";
import type { Readable } from "node:stream";
import { toConnectError } from "./error-mapping.js";
import { GrpcHandlerContext, type GrpcCall } from "./grpc-context.js";
import { tolerantDeserializer } from "./undecodable-requests.js";

/** TLS material for the gRPC port, already read from disk. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** CA bundle that client certificates must chain to; enables mTLS. */
  readonly clientCa?: Buffer;
}

/** Options for {@link createGrpcServer}. */
export interface GrpcServerOptions {
  /** Largest request and response message in bytes; larger ones fail with RESOURCE_EXHAUSTED. */
  readonly maxMessageBytes: number;
  /** Linked into every call's context signal; aborted when shutdown begins. */
  readonly shutdownSignal: AbortSignal;
  /**
   * Decodes the requests of offloadable methods (see
   * `ServiceRegistration.offloaded`): their handlers get an
   * `EncodedRequest` instead of a message. The decode pool, or the inline
   * decoder without one. Without a decoder, every request is decoded as it
   * is read. Either way, bytes that are not the request message answer
   * INVALID_ARGUMENT (grpc-js alone would answer INTERNAL).
   */
  readonly decoder?: RequestDecoder;
}

type AnyFn = (input: unknown, ctx: HandlerContext) => unknown;

/**
 * Creates the `@grpc/grpc-js` server of the gRPC port and registers every
 * service on it through the adapter: each connect-es style handler is called
 * with a {@link GrpcHandlerContext}, its result or stream is written with the
 * protobuf-es serializers, and whatever it throws is sent as the gRPC status
 * of the same numeric code (connect-es `Code` values are gRPC's).
 *
 * The registrations must come from `instrumentService`: a request whose
 * bytes do not decode reaches the handler as its `UndecodableRequestError`
 * (see `tolerantDeserializer`), which the instrumentation throws.
 */
export function createGrpcServer(registrations: readonly ServiceRegistration[], options: GrpcServerOptions): Server {
  const server = new Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
    // Channelz bookkeeping cost ~3% of CPU per call in the registry bench; we
    // expose our own metrics instead.
    "grpc.enable_channelz": 0,
  });
  for (const registration of registrations) {
    const { service, impl } = registration;
    const handlers: Record<string, UntypedHandleCall> = {};
    const source = impl as unknown as Record<string, AnyFn | undefined>;
    for (const method of service.methods) {
      const handler = source[method.localName];
      if (handler !== undefined) handlers[method.localName] = adapt(method, handler.bind(impl), options.shutdownSignal);
    }
    server.addService(serverDefinition(service, registration, options.decoder), handlers);
  }
  return server;
}

/**
 * The service's definition as the server reads requests: the offloadable
 * methods' requests left as bytes for `decoder`, every other request decoded
 * without throwing (see `tolerantDeserializer`).
 */
function serverDefinition(service: DescService, registration: ServiceRegistration, decoder: RequestDecoder | undefined): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = { ...grpcServiceDefinition(service) };
  for (const method of service.methods) {
    const spec = registration.offloaded?.get(method.localName);
    definition[method.localName] = {
      ...definition[method.localName]!,
      requestDeserialize:
        decoder !== undefined && spec !== undefined
          ? (bytes: Buffer) => new EncodedRequest(spec.path, bytes, decoder)
          : tolerantDeserializer(method.input),
    };
  }
  return definition;
}

/** Credentials for the gRPC port: h2c without TLS material, TLS or mTLS with it. */
export function grpcServerCredentials(tls: TlsMaterial | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    tls.clientCa ?? null,
    [{ private_key: tls.key, cert_chain: tls.cert }],
    tls.clientCa !== undefined,
  );
}

function adapt(method: DescMethod, handler: AnyFn, shutdownSignal: AbortSignal): UntypedHandleCall {
  const output = method.output;
  switch (method.methodKind) {
    case "unary":
      return ((call: GrpcCall & { request: unknown }, callback: sendUnaryData<unknown>) => {
        const ctx = new GrpcHandlerContext(call, method, shutdownSignal);
        respondOnce(invoke(handler, call.request, ctx), ctx, call, output, callback);
      }) as UntypedHandleCall;
    case "client_streaming":
      return ((call: GrpcCall & Readable, callback: sendUnaryData<unknown>) => {
        const ctx = new GrpcHandlerContext(call, method, shutdownSignal);
        respondOnce(invoke(handler, requestsOf(call), ctx), ctx, call, output, callback);
      }) as UntypedHandleCall;
    case "server_streaming":
      return ((call: ServerWritableStream<unknown, unknown> & { request: unknown }) => {
        const ctx = new GrpcHandlerContext(call, method, shutdownSignal);
        void pumpResponses(handler(call.request, ctx) as AsyncIterable<unknown>, ctx, call, output);
      }) as UntypedHandleCall;
    case "bidi_streaming":
      return ((call: ServerWritableStream<unknown, unknown> & Readable) => {
        const ctx = new GrpcHandlerContext(call, method, shutdownSignal);
        void pumpResponses(handler(requestsOf(call), ctx) as AsyncIterable<unknown>, ctx, call, output);
      }) as UntypedHandleCall;
  }
}

/** Calls a handler, turning a synchronous throw into a rejected promise. */
function invoke(handler: AnyFn, input: unknown, ctx: HandlerContext): unknown {
  try {
    return handler(input, ctx);
  } catch (thrown) {
    return Promise.reject(thrown);
  }
}

/**
 * The request stream of a call. Node's default readable iterator destroys the
 * stream when the loop ends, which for a bidi call would also destroy the
 * response side before its status is sent; this one leaves it open.
 */
function requestsOf(call: Readable): AsyncIterable<unknown> {
  return { [Symbol.asyncIterator]: () => call.iterator({ destroyOnReturn: false }) };
}

function respondOnce(
  result: unknown,
  ctx: GrpcHandlerContext,
  call: GrpcCall,
  output: DescMessage,
  callback: sendUnaryData<unknown>,
): void {
  if (result instanceof Promise) {
    result.then(
      (response: unknown) => respond(response, ctx, call, output, callback),
      (thrown: unknown) => {
        ctx.complete();
        callback(toStatus(thrown, ctx));
      },
    );
  } else respond(result, ctx, call, output, callback);
}

function respond(response: unknown, ctx: GrpcHandlerContext, call: GrpcCall, output: DescMessage, callback: sendUnaryData<unknown>): void {
  ctx.complete();
  let message: unknown;
  let trailers;
  try {
    const header = ctx.headerMetadata();
    if (header !== undefined) call.sendMetadata(header);
    message = asMessage(output, response);
    trailers = ctx.trailerMetadata();
  } catch (thrown) {
    // A response that cannot be built (bad message, bad header) still answers.
    callback(toStatus(thrown, ctx));
    return;
  }
  callback(null, message, trailers);
}

/**
 * Writes a handler's response stream with backpressure: the next message is
 * pulled only after the socket accepted the previous one, so a slow client
 * slows its own handler (whose watch queue then overflows into catch-up
 * mode) and never the server.
 */
async function pumpResponses(
  responses: AsyncIterable<unknown>,
  ctx: GrpcHandlerContext,
  call: ServerWritableStream<unknown, unknown>,
  output: DescMessage,
): Promise<void> {
  const iterator = responses[Symbol.asyncIterator]();
  const stop = (): void => {
    void iterator.return?.();
  };
  call.once("cancelled", stop);
  let headerSent = false;
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done === true || call.cancelled) break;
      if (!headerSent) {
        headerSent = true;
        const header = ctx.headerMetadata();
        if (header !== undefined) call.sendMetadata(header);
      }
      if (!call.write(asMessage(output, next.value))) await drained(call);
    }
    if (!call.cancelled) call.end(ctx.trailerMetadata());
  } catch (thrown) {
    if (!call.cancelled) call.emit("error", toStatus(thrown, ctx));
  } finally {
    call.off("cancelled", stop);
    ctx.complete();
  }
}

function drained(call: ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off("drain", done);
      call.off("cancelled", done);
      resolve();
    };
    call.once("drain", done);
    call.once("cancelled", done);
  });
}

function asMessage(schema: DescMessage, value: unknown): unknown {
  return isMessage(value, schema) ? value : create(schema, value as MessageInitShape<DescMessage>);
}

function toStatus(thrown: unknown, ctx: GrpcHandlerContext): ServerErrorResponse {
  // Handlers reach the adapter through the instrumentation, which has already
  // mapped domain errors and logged bugs; this covers adapter-level failures.
  const { error } = toConnectError(thrown);
  const status_ = Object.assign(new Error(error.rawMessage), {
    code: error.code as number as status,
    details: error.rawMessage,
    metadata: ctx.trailerMetadata(),
  });
  return status_;
}
