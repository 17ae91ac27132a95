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

/**
 * Records a call that failed before its handler ran, which began at
 * `startedAt` (`process.hrtime.bigint()`); see `rejectedCallRecorder`.
 */
export type RejectedCallRecorder = (method: DescMethod, ctx: HandlerContext, error: ConnectError, startedAt: bigint) => void;

/**
 * The HTTP port's handling of requests connect-node rejects before the
 * handler runs: install both parts.
 */
export interface UndecodableRequestHandling {
  /**
   * The request gate. A unary request that does not decode gets the gRPC
   * port's answer: connect-node answers that parse failure INTERNAL before
   * any interceptor runs, and aborts the call's context with the error just
   * before it writes it, in every protocol; a listener on the context's
   * signal makes it INVALID_ARGUMENT in place, and records it. So it does
   * with every other error connect-node ends a call with before the
   * interceptors (a JSON body that does not parse, a message too large, a
   * bad timeout). A call that reached the interceptors is left alone, so an
   * error a handler threw is never blamed on the request, nor recorded
   * twice. The edge tests pin this for Connect, gRPC-Web and gRPC.
   */
  readonly requestGate: (context: HandlerContext) => void;
  /**
   * The interceptor: notes that the call got this far, and makes a streamed
   * request message that does not decode fail its read with the same
   * INVALID_ARGUMENT. A server-streaming call's one request is read before
   * its handler runs, so its read failures are recorded here too.
   */
  readonly interceptor: Interceptor;
}

/** Where a call stands for the gate: its context and start, until it reaches the interceptors. */
interface GatedCall {
  readonly context: HandlerContext;
  readonly startedAt: bigint;
}

const gatedCallKey = createContextKey<GatedCall | undefined>(undefined, { description: "latticeforge.gated-call" });

/**
 * The HTTP port's handling of undecodable requests, and of every call
 * connect-node fails before the handler runs: those go to `record` (the
 * handler's instrumentation records every other call).
 */
export function undecodableRequestHandling(record: RejectedCallRecorder): UndecodableRequestHandling {
  /** Records without letting a recorder bug escape into connect-node (or an abort listener). */
  const recordSafely = (call: GatedCall, error: ConnectError): void => {
    try {
      record(call.context.method, call.context, error, call.startedAt);
    } catch {
      // Metrics and logs are best effort; the call is answered regardless.
    }
  };
  const requestGate = (context: HandlerContext): void => {
    const call: GatedCall = { context, startedAt: process.hrtime.bigint() };
    context.values.set(gatedCallKey, call);
    const { signal } = context;
    signal.addEventListener(
      "abort",
      () => {
        const error: unknown = signal.reason;
        if (context.values.get(gatedCallKey) === undefined || !(error instanceof ConnectError)) return;
        const mapped = invalidArgumentFor(error, context.method.input);
        if (mapped !== undefined) Object.assign(error, { code: mapped.code, rawMessage: mapped.rawMessage, message: mapped.message });
        recordSafely(call, error);
      },
      { once: true },
    );
  };
  const interceptor: Interceptor = (next) => (request) => {
    const call = request.contextValues.get(gatedCallKey);
    request.contextValues.set(gatedCallKey, undefined);
    if (!request.stream) return next(request);
    const { method } = request;
    const onReadFailure =
      method.methodKind === "server_streaming" && call !== undefined ? (error: ConnectError) => recordSafely(call, error) : undefined;
    return next({ ...request, message: withReadFailuresMapped(request.message, method.input, onReadFailure) });
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
 * {@link invalidArgumentFor}'s error instead. `onReadFailure` sees every
 * read failure that is a ConnectError, as it is then thrown.
 */
async function* withReadFailuresMapped<T>(
  messages: AsyncIterable<T>,
  input: DescMessage,
  onReadFailure: ((error: ConnectError) => void) | undefined,
): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    const thrown = invalidArgumentFor(error, input) ?? error;
    if (thrown instanceof ConnectError) onReadFailure?.(thrown);
    throw thrown;
  }
}
