import { fromBinary, type DescMessage, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { InvalidFieldError } from "../core/errors.js";
import type { ChunkResult, StreamOffloadSpec } from "./offloaded-streams.js";

/**
 * How a unary method's request is decoded and checked off the event loop.
 * Ingesting a 1,000-span batch spends ~5 ms decoding protobuf and ~7 ms
 * mapping and validating before the store writes a row; with a spec, the
 * gRPC port hands the request bytes to a decode worker for that part (see
 * `DecodePool`), and the event loop only answers from what `prepare`
 * returned.
 */
export interface OffloadSpec<Input extends DescMessage = DescMessage, Prepared = unknown> {
  readonly kind: "unary";
  /** `/package.Service/Method`: how a decode worker finds the spec. */
  readonly path: string;
  /** The request message. */
  readonly input: Input;
  /**
   * Checks the decoded request and turns it into what the handler answers
   * from. Pure (no I/O, no state): it runs in a worker thread or inline.
   * Throws domain errors for bad input. Its result crosses threads by
   * structured clone, so it holds plain data only.
   */
  readonly prepare: (request: MessageShape<Input>) => Prepared;
}

/** Defines the {@link OffloadSpec} of a unary method. */
export function offloadSpec<Input extends DescMessage, Prepared>(
  method: DescMethodUnary<Input>,
  prepare: (request: MessageShape<Input>) => Prepared,
): OffloadSpec<Input, Prepared> {
  return { kind: "unary", path: `/${method.parent.typeName}/${method.name}`, input: method.input, prepare };
}

/** A unary method's or a client-streaming method's spec: what the decode workers look up by path. */
export type AnyOffloadSpec = OffloadSpec | StreamOffloadSpec;

/**
 * Request bytes that do not decode as the method's message: the caller's
 * fault, so INVALID_ARGUMENT (grpc-js answers INTERNAL for a request it
 * cannot decode).
 */
export class UndecodableRequestError extends InvalidFieldError {
  /**
   * @param typeName the message the bytes should have been
   * @param detail what the decoder said
   */
  constructor(
    readonly typeName: string,
    readonly detail: string,
  ) {
    super("request", `is not a valid ${typeName}: ${detail}`);
  }

  /** The error of bytes that `decoderError` says are not a `typeName`. */
  static from(typeName: string, decoderError: unknown): UndecodableRequestError {
    return new UndecodableRequestError(typeName, decoderError instanceof Error ? decoderError.message : String(decoderError));
  }
}

/**
 * Decodes request bytes and prepares them: what a decode worker runs, and
 * the inline fallback.
 *
 * @throws UndecodableRequestError; whatever `prepare` throws
 */
export function decodeAndPrepare<Input extends DescMessage, Prepared>(spec: OffloadSpec<Input, Prepared>, bytes: Uint8Array): Prepared {
  return spec.prepare(decodeMessage(spec.input, bytes));
}

/**
 * Bytes decoded as `input`, for a unary request or a stream message.
 *
 * @throws UndecodableRequestError when they are not one
 */
export function decodeMessage<Input extends DescMessage>(input: Input, bytes: Uint8Array): MessageShape<Input> {
  try {
    return fromBinary(input, bytes);
  } catch (error) {
    throw UndecodableRequestError.from(input.typeName, error);
  }
}

/** Decodes and prepares request bytes for an offload spec by its path, off the event loop. */
export interface RequestDecoder {
  /** @returns what the unary spec's `prepare` returned; rejects with what it (or decoding) threw */
  decode(path: string, bytes: Uint8Array): Promise<unknown>;
  /**
   * Decodes and prepares consecutive messages of a client stream (see
   * `StreamOffloadSpec`), stopping at the first that fails.
   *
   * @param firstIndex the stream index of `messages[0]`
   * @param context the spec's context, as the handler took it for this chunk
   */
  decodeChunk(path: string, messages: readonly Uint8Array[], firstIndex: number, context: unknown): Promise<ChunkResult>;
}

/**
 * A request that arrived as bytes, for a handler built with
 * {@link offloadable}: the gRPC port passes one instead of the decoded
 * message when it has a decode pool.
 */
export class EncodedRequest {
  constructor(
    readonly path: string,
    readonly bytes: Uint8Array,
    readonly decoder: RequestDecoder,
  ) {}

  /** The request decoded and prepared by the decoder. */
  prepared(): Promise<unknown> {
    return this.decoder.decode(this.path, this.bytes);
  }
}

/** Marks handlers built by {@link offloadable} or `offloadableStream`, with their spec. */
const specOfHandler = new WeakMap<object, AnyOffloadSpec>();

/** Notes that `handler` also takes `EncodedRequest`s, prepared by `spec` (see {@link offloadSpecOf}). */
export function withOffloadSpec<H extends object>(handler: H, spec: AnyOffloadSpec): H {
  specOfHandler.set(handler, spec);
  return handler;
}

/**
 * A unary handler in two halves: `spec.prepare` (pure, maybe in a worker)
 * and `answer` (on the event loop). Given a decoded message (HTTP port, or
 * the gRPC port without decode workers) it prepares inline; given an
 * {@link EncodedRequest} it awaits the decoder's result. Either way the
 * same `prepare` judges the request, so both ports answer alike.
 */
export function offloadable<Input extends DescMessage, Prepared, Output>(
  spec: OffloadSpec<Input, Prepared>,
  answer: (prepared: Prepared, ctx: HandlerContext) => Promise<Output>,
): (request: MessageShape<Input>, ctx: HandlerContext) => Promise<Output> {
  const handler = async (request: MessageShape<Input> | EncodedRequest, ctx: HandlerContext): Promise<Output> => {
    const prepared = request instanceof EncodedRequest ? ((await request.prepared()) as Prepared) : spec.prepare(request);
    return answer(prepared, ctx);
  };
  withOffloadSpec(handler, spec as unknown as OffloadSpec);
  return handler as (request: MessageShape<Input>, ctx: HandlerContext) => Promise<Output>;
}

/** The spec of a handler built by {@link offloadable} or `offloadableStream`; undefined for any other handler. */
export function offloadSpecOf(handler: unknown): AnyOffloadSpec | undefined {
  return typeof handler === "function" ? specOfHandler.get(handler) : undefined;
}
