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
 *   runs, and a streamed one as the call reads it. {@link undecodableRequestInterceptor}
 *   maps the parse error of a streamed message; {@link undecodableRequestGate}
 *   rewrites a unary request's in place. Both must be installed.
 */
import type { DescMessage } from "@bufbuild/protobuf";
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

/** Set once a connect-node call reached the interceptors: its unary request decoded. */
const reachedInterceptorsKey = createContextKey(false, { description: "latticeforge.reached-interceptors" });

/**
 * A connect-node interceptor: notes that the call got this far (see
 * {@link undecodableRequestGate}) and makes a streamed request message that
 * does not decode fail its read with the gRPC port's INVALID_ARGUMENT.
 */
export const undecodableRequestInterceptor: Interceptor = (next) => (request) => {
  request.contextValues.set(reachedInterceptorsKey, true);
  if (!request.stream) return next(request);
  return next({ ...request, message: withReadFailuresMapped(request.message, request.method.input) });
};

/**
 * A connect-node request gate that gives a unary call whose request does not
 * decode the gRPC port's answer. connect-node answers that parse failure
 * INTERNAL before any interceptor runs, and aborts the call's context with
 * the error just before it writes it, in every protocol; a listener on the
 * context's signal makes it INVALID_ARGUMENT in place. Only a call that never
 * reached the interceptors is rewritten, so an error a handler threw is never
 * blamed on the request. The edge tests pin this for Connect, gRPC-Web and
 * gRPC on the HTTP port.
 */
export function undecodableRequestGate(context: HandlerContext): void {
  const { signal } = context;
  signal.addEventListener(
    "abort",
    () => {
      const error: unknown = signal.reason;
      if (context.values.get(reachedInterceptorsKey)) return;
      const mapped = invalidArgumentFor(error, context.method.input);
      if (mapped === undefined) return;
      Object.assign(error as ConnectError, { code: mapped.code, rawMessage: mapped.rawMessage, message: mapped.message });
    },
    { once: true },
  );
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

/** `messages`, with a read that fails to parse failing with {@link invalidArgumentFor}'s error instead. */
async function* withReadFailuresMapped<T>(messages: AsyncIterable<T>, input: DescMessage): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    throw invalidArgumentFor(error, input) ?? error;
  }
}
