import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "../observability/logger.js";
import type { ServerMetrics } from "../observability/metrics.js";
import type { ServiceRegistration } from "../rpc/service-registration.js";
import { extractTraceContext } from "../../client/trace-context.js";
import { abortableRequests } from "./abortable-requests.js";
import { peerKey } from "./call-context.js";
import { toConnectError } from "./error-mapping.js";
import { decodedRequest, type RejectedCallRecorder } from "./undecodable-requests.js";

/** What {@link instrumentService} needs from the server. */
export interface InstrumentOptions {
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
  /**
   * Aborted when the server starts shutting down. Streaming handlers end when
   * their context signal aborts (both transports link it to this signal); the
   * instrumentation then ends the stream with UNAVAILABLE so that clients
   * reconnect, elsewhere or after the restart.
   */
  readonly shutdownSignal: AbortSignal;
}

/** The message of the UNAVAILABLE status that ends streams on shutdown. */
export const shuttingDownMessage = "server shutting down";

type AnyFn = (input: unknown, ctx: HandlerContext) => unknown;
type GrpcType = "unary" | "server_stream" | "client_stream" | "bidi_stream";

const grpcTypeByKind: Record<DescMethod["methodKind"], GrpcType> = {
  unary: "unary",
  server_streaming: "server_stream",
  client_streaming: "client_stream",
  bidi_streaming: "bidi_stream",
};

/**
 * Wraps every handler of a service with the edge's cross-cutting concerns,
 * once for both transports: metrics, one log line per RPC (debug) and per
 * failure (warn; error with stack for handler bugs), mapping of thrown domain
 * errors to gRPC statuses, UNAVAILABLE for streams ended by shutdown,
 * INVALID_ARGUMENT for request bytes that did not decode (see
 * `undecodable-requests.ts`), and request streams that stop waiting when the
 * call ends (see `abortableRequests`).
 *
 * Statistics objects are bound when the service is wrapped, so a call costs
 * a few plain increments and one clock read at each end.
 */
export function instrumentService(registration: ServiceRegistration, options: InstrumentOptions): ServiceRegistration {
  const impl: Record<string, AnyFn> = {};
  const source = registration.impl as unknown as Record<string, AnyFn | undefined>;
  for (const method of registration.service.methods) {
    const handler = source[method.localName];
    if (handler === undefined) continue;
    const called = handler.bind(registration.impl);
    // Streaming requests stop waiting when the call ends or shutdown begins (both ports).
    const bound: AnyFn =
      method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming"
        ? (input, ctx) =>
            called(abortableRequests(input as AsyncIterable<unknown>, ctx.signal, options.shutdownSignal, shuttingDownMessage), ctx)
        : (input, ctx) => called(decodedRequest(input), ctx);
    impl[method.localName] =
      method.methodKind === "unary" || method.methodKind === "client_streaming"
        ? wrapSingleResponse(method, bound, options)
        : wrapStreamingResponse(method, bound, options);
  }
  return { ...registration, impl: impl as unknown as ServiceRegistration["impl"] };
}

/**
 * Records a call the transport failed before its handler ran (on the HTTP
 * port, see `undecodable-requests.ts`): counted and logged like a call that
 * failed in its handler.
 */
export function rejectedCallRecorder(options: InstrumentOptions): RejectedCallRecorder {
  return (method, ctx, error, startedAt) => {
    const observer = methodObserver(method, options);
    observer.start();
    observer.finish(startedAt, error.code, ctx, error);
  };
}

type MethodObserver = ReturnType<typeof createMethodObserver>;

/** Each method's observer, per metrics registry: one set of series per method, whoever records. */
const observers = new WeakMap<ServerMetrics, Map<DescMethod, MethodObserver>>();

function methodObserver(method: DescMethod, options: InstrumentOptions): MethodObserver {
  let byMethod = observers.get(options.metrics);
  if (byMethod === undefined) {
    byMethod = new Map();
    observers.set(options.metrics, byMethod);
  }
  let observer = byMethod.get(method);
  if (observer === undefined) {
    observer = createMethodObserver(method, options);
    byMethod.set(method, observer);
  }
  return observer;
}

/** Per-method statistics and the completion bookkeeping (metrics and logs). */
function createMethodObserver(method: DescMethod, { metrics, logger }: InstrumentOptions) {
  const stats = metrics.rpc.method({
    grpc_type: grpcTypeByKind[method.methodKind],
    grpc_service: method.parent.typeName,
    grpc_method: method.name,
  });
  const path = `/${method.parent.typeName}/${method.name}`;
  return {
    stats,
    start(): bigint {
      stats.started++;
      return process.hrtime.bigint();
    },
    finish(startedAt: bigint, code: Code | 0, ctx: HandlerContext, error?: ConnectError, cause?: unknown): void {
      const elapsed = Number(process.hrtime.bigint() - startedAt) / 1e9;
      stats.finish(code === 0 ? "OK" : Code[code], elapsed);
      if (error === undefined) {
        if (logger.isLevelEnabled("debug")) {
          logger.debug({ method: path, code: "OK", ms: elapsed * 1000, peer: ctx.values.get(peerKey), ...traceFields(ctx) }, "rpc");
        }
        return;
      }
      const fields = { method: path, code: Code[code], ms: elapsed * 1000, peer: ctx.values.get(peerKey), ...traceFields(ctx) };
      if (cause !== undefined) logger.error({ ...fields, err: cause }, "rpc failed: handler error");
      else if (code === Code.Canceled || code === Code.DeadlineExceeded || code === Code.Unavailable) {
        logger.debug({ ...fields, msg: error.rawMessage }, "rpc ended");
      } else logger.warn({ ...fields, error: error.rawMessage }, "rpc failed");
    },
  };
}

/**
 * The caller's W3C trace context as log fields (`trace_id`, `span_id`,
 * `trace_flags`, as OpenTelemetry's log data model names them), so a log
 * line can be joined with the caller's trace; none when the call carries no
 * valid `traceparent`. Only read when a line is logged: reading headers is
 * what makes the grpc-js context build them.
 */
function traceFields(ctx: HandlerContext): { trace_id?: string; span_id?: string; trace_flags?: string } {
  const context = extractTraceContext(ctx.requestHeader);
  if (context === undefined) return {};
  return {
    trace_id: context.traceId,
    span_id: context.parentId,
    trace_flags: context.traceFlags.toString(16).padStart(2, "0"),
  };
}

/**
 * Unary and client-streaming handlers. A handler that answers synchronously
 * is answered synchronously (no promise round-trip); one that returns a
 * promise is observed when it settles.
 */
function wrapSingleResponse(method: DescMethod, handler: AnyFn, options: InstrumentOptions): AnyFn {
  const observer = methodObserver(method, options);
  const fail = (startedAt: bigint, ctx: HandlerContext, thrown: unknown): never => {
    const { error, unexpected } = mapFailure(thrown, ctx);
    observer.finish(startedAt, error.code, ctx, error, unexpected ? thrown : undefined);
    throw error;
  };
  return (input, ctx) => {
    const startedAt = observer.start();
    let response: unknown;
    try {
      response = handler(input, ctx);
    } catch (thrown) {
      return fail(startedAt, ctx, thrown);
    }
    if (response instanceof Promise) {
      return response.then(
        (value: unknown) => {
          observer.finish(startedAt, 0, ctx);
          return value;
        },
        (thrown: unknown) => fail(startedAt, ctx, thrown),
      );
    }
    observer.finish(startedAt, 0, ctx);
    return response;
  };
}

function wrapStreamingResponse(method: DescMethod, handler: AnyFn, options: InstrumentOptions): AnyFn {
  const observer = methodObserver(method, options);
  const { shutdownSignal } = options;
  const { stats } = observer;
  return async function* (input, ctx) {
    const startedAt = observer.start();
    stats.openStreams++;
    let failure: { error: ConnectError; cause?: unknown } | undefined;
    let completed = false;
    try {
      for await (const message of handler(input, ctx) as AsyncIterable<unknown>) {
        yield message;
        stats.streamMessagesSent++;
      }
      if (shutdownSignal.aborted) throw new ConnectError(shuttingDownMessage, Code.Unavailable);
      // A handler that ended because its call was cancelled or timed out did
      // not complete: the call ends with that status.
      const reason: unknown = ctx.signal.aborted ? ctx.signal.reason : undefined;
      if (reason instanceof ConnectError) throw reason;
      completed = true;
    } catch (thrown) {
      const mapped = shutdownSignal.aborted
        ? { error: new ConnectError(shuttingDownMessage, Code.Unavailable), unexpected: false }
        : mapFailure(thrown, ctx);
      failure = { error: mapped.error, cause: mapped.unexpected ? thrown : undefined };
      throw mapped.error;
    } finally {
      stats.openStreams--;
      // Neither completed nor failed: the transport returned the generator
      // early because the client went away.
      if (failure === undefined && !completed) failure = { error: new ConnectError("cancelled by the client", Code.Canceled) };
      observer.finish(startedAt, failure?.error.code ?? 0, ctx, failure?.error, failure?.cause);
    }
  };
}

/**
 * Maps what a handler threw. When the call was already cancelled or past its
 * deadline, whatever the handler tripped over (typically its request stream
 * closing under it) is the cancellation, not a handler bug.
 */
function mapFailure(thrown: unknown, ctx: HandlerContext): { error: ConnectError; unexpected: boolean } {
  const mapped = toConnectError(thrown);
  if (mapped.unexpected && ctx.signal.aborted && ctx.signal.reason instanceof ConnectError) {
    return { error: ctx.signal.reason, unexpected: false };
  }
  return mapped;
}
