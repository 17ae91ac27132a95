/**
 * Request bytes that are not the method's message are the caller's fault, so
 * both ports answer them INVALID_ARGUMENT naming `request`
 * ({@link UndecodableRequestError}), where grpc-js and connect-node on their
 * own answer INTERNAL.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { decodeMessage, UndecodableRequestError } from "../rpc/offloaded-decoding.js";

/**
 * A grpc-js request deserializer for `input` that returns the
 * {@link UndecodableRequestError} instead of throwing it (grpc-js would answer
 * INTERNAL without calling the handler); the instrumentation throws it inside
 * the call (see {@link decodedRequest}), so it is answered, logged and counted
 * like any invalid request.
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

/**
 * What a failed read of a request stream means to the handler: connect-node's
 * parse error of a stream message becomes the {@link UndecodableRequestError}
 * of `input`; anything else is returned as it is.
 */
export function requestReadFailure(error: unknown, input: DescMessage): unknown {
  const detail = parseFailureDetail(error);
  return detail === undefined ? error : new UndecodableRequestError(input.typeName, detail);
}

/**
 * A connect-node request gate giving the call the gRPC port's answer when its
 * (unary) request does not decode. connect-node parses a unary request before
 * any interceptor runs and answers a parse failure INTERNAL; it aborts the
 * call's context with that error just before it writes it, in every protocol,
 * so a listener on the context's signal can make it the
 * {@link UndecodableRequestError}'s INVALID_ARGUMENT in place. The edge tests
 * pin this for Connect, gRPC-Web and gRPC on the HTTP port.
 */
export function undecodableRequestGate(context: HandlerContext): void {
  const { signal } = context;
  const input = context.method.input;
  signal.addEventListener(
    "abort",
    () => {
      const error: unknown = signal.reason;
      const detail = parseFailureDetail(error);
      if (detail === undefined) return;
      const replacement = new UndecodableRequestError(input.typeName, detail);
      Object.assign(error as ConnectError, {
        code: Code.InvalidArgument,
        rawMessage: replacement.message,
        message: new ConnectError(replacement.message, Code.InvalidArgument).message,
      });
    },
    { once: true },
  );
}

/** connect-node's prefix of a binary request that does not decode, thrown as INTERNAL. */
const parseBinaryPrefix = "parse binary: ";

/** The decoder's words when `error` is connect-node's binary parse failure of a request. */
function parseFailureDetail(error: unknown): string | undefined {
  if (!(error instanceof ConnectError) || error.code !== Code.Internal || !error.rawMessage.startsWith(parseBinaryPrefix)) return undefined;
  return error.rawMessage.slice(parseBinaryPrefix.length);
}
