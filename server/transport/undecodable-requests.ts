/**
 * Request bytes that are not the method's message are the caller's fault, so
 * both ports answer them INVALID_ARGUMENT, `request is not a valid <type>:
 * <why>` ({@link UndecodableRequestError}), where grpc-js and connect-node on
 * their own answer INTERNAL.
 *
 * - gRPC port: {@link tolerantDeserializer} hands the error to the call in
 *   place of the message; the instrumentation throws it inside the call
 *   ({@link decodedRequest}; `abortableRequests` for request streams), so it
 *   is logged and counted like any invalid request.
 * - HTTP port: connect-node parses a unary request before any interceptor
 *   runs, and a streamed one as the call reads it; see
 *   {@link undecodableRequestHandling}.
 */
import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { decodeMessage, UndecodableRequestError } from "../rpc/offloaded-decoding.js";
import { toConnectError } from "./error-mapping.js";

/**
 * A grpc-js request deserializer for `input` that returns the
 * {@link UndecodableRequestError} instead of throwing it (grpc-js would answer
 * INTERNAL without calling the handler). Only for handlers wrapped by the
 * instrumentation, which throws it inside the call.
 */
export function tolerantDeserializer(input: DescMessage): (bytes: Buffer) => unknown {
  return (bytes) => {
    try {
      return decodeMessage(input, bytes);
    } catch (error) {
      return error;
    }
  };
}

/**
 * A request, or a message of a request stream, as the handler may see it.
 *
 * @throws UndecodableRequestError when it is the placeholder of bytes that did
 *   not decode (see {@link tolerantDeserializer})
 */
export function decodedRequest<T>(request: T): T {
  if (request instanceof UndecodableRequestError) throw request;
  return request;
}

/** Records a call answered before its handler ran (see `rejectedCallRecorder`). */
export type RejectedCallRecorder = (method: DescMethod, ctx: HandlerContext, error: ConnectError) => void;

/** The HTTP port's handling of undecodable requests: install both parts. */
export interface UndecodableRequestHandling {
  /**
   * The request gate: a unary request that does not decode gets the gRPC
   * port's answer. connect-node answers that parse failure INTERNAL before
   * any interceptor runs, and aborts the call's context with the error just
   * before it writes it, in every protocol; a listener on the context's
   * signal makes it INVALID_ARGUMENT in place. Only a call that never
   * reached the interceptors is rewritten, so an error a handler threw is
   * never blamed on the request. The edge tests pin this for Connect,
   * gRPC-Web and gRPC on the HTTP port.
   */
  readonly requestGate: (context: HandlerContext) => void;
  /**
   * The interceptor: notes that the call got this far, and makes a streamed
   * request message that does not decode fail its read with the same
   * INVALID_ARGUMENT.
   */
  readonly interceptor: Interceptor;
}

/** The call's context, kept by the gate; unset once the call reached the interceptors. */
const gatedContextKey = createContextKey<HandlerContext | undefined>(undefined, { description: "latticeforge.gated-context" });

/**
 * The HTTP port's handling of undecodable requests. Calls answered before
 * their handler ran (unary, and server-streaming, whose one request
 * connect-node reads first) go to `record`; the handler's instrumentation
 * records every other call.
 */
export function undecodableRequestHandling(record: RejectedCallRecorder): UndecodableRequestHandling {
  const requestGate = (context: HandlerContext): void => {
    context.values.set(gatedContextKey, context);
    const { signal } = context;
    signal.addEventListener(
      "abort",
      () => {
        if (context.values.get(gatedContextKey) === undefined) return;
        const error: unknown = signal.reason;
        const mapped = invalidArgumentFor(error, context.method.input);
        if (mapped === undefined) return;
        Object.assign(error as ConnectError, { code: mapped.code, rawMessage: mapped.rawMessage, message: mapped.message });
        record(context.method, context, error as ConnectError);
      },
      { once: true },
    );
  };
  const interceptor: Interceptor = (next) => (request) => {
    const context = request.contextValues.get(gatedContextKey);
    request.contextValues.set(gatedContextKey, undefined);
    if (!request.stream) return next(request);
    const { method } = request;
    const onUndecodable =
      method.methodKind === "server_streaming" && context !== undefined
        ? (error: ConnectError) => record(method, context, error)
        : undefined;
    return next({ ...request, message: withReadFailuresMapped(request.message, method.input, onUndecodable) });
  };
  return { requestGate, interceptor };
}

/** connect-node's prefix of a binary request that does not decode, thrown as INTERNAL. */
const parseBinaryPrefix = "parse binary: ";

/**
 * When `error` is connect-node's failure to parse an `input`: the
 * INVALID_ARGUMENT the gRPC port answers for the same bytes.
 */
function invalidArgumentFor(error: unknown, input: DescMessage): ConnectError | undefined {
  if (!(error instanceof ConnectError) || error.code !== Code.Internal || !error.rawMessage.startsWith(parseBinaryPrefix)) return undefined;
  return toConnectError(new UndecodableRequestError(input.typeName, error.rawMessage.slice(parseBinaryPrefix.length))).error;
}

/**
 * `messages`, with a read that fails to parse failing with
 * {@link invalidArgumentFor}'s error instead, which `onUndecodable` sees first.
 */
async function* withReadFailuresMapped<T>(
  messages: AsyncIterable<T>,
  input: DescMessage,
  onUndecodable: ((error: ConnectError) => void) | undefined,
): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    const mapped = invalidArgumentFor(error, input);
    if (mapped === undefined) throw error;
    onUndecodable?.(mapped);
    throw mapped;
  }
}
