import type { DescMessage, DescMethodClientStreaming, MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { decodeMessage, EncodedRequest, withOffloadSpec } from "./offloaded-decoding.js";

/**
 * How a client-streaming method's messages are decoded and checked off the
 * event loop. A proxy's CaptureStream sends thousands of small messages a
 * second, each costing ~20 µs of protobuf decoding and validation; with a
 * spec, the gRPC port leaves them as bytes and {@link preparedMessages}
 * hands a decode worker the ones that arrived together, as one task, while
 * the event loop goes on reading.
 */
export interface StreamOffloadSpec<Input extends DescMessage = DescMessage, Context = unknown, Prepared = unknown> {
  readonly kind: "stream";
  /** `/package.Service/Method`: how a decode worker finds the spec. */
  readonly path: string;
  /** The stream's message. */
  readonly input: Input;
  /**
   * Checks message `index` (0-based, in stream order) and turns it into what
   * the handler consumes. Pure, like `OffloadSpec.prepare`; `context` holds
   * what it needs from the server (limits, the clock's reading), as plain
   * data, since it crosses threads.
   */
  readonly prepare: (message: MessageShape<Input>, index: number, context: Context) => Prepared;
}

/** Defines the {@link StreamOffloadSpec} of a client-streaming method. */
export function streamOffloadSpec<Input extends DescMessage, Context, Prepared>(
  method: DescMethodClientStreaming<Input>,
  prepare: (message: MessageShape<Input>, index: number, context: Context) => Prepared,
): StreamOffloadSpec<Input, Context, Prepared> {
  return { kind: "stream", path: `/${method.parent.typeName}/${method.name}`, input: method.input, prepare };
}

/**
 * What a chunk of stream messages came to: the prepared messages, in order,
 * up to the first that failed, and that one's error.
 */
export interface ChunkResult<Prepared = unknown> {
  readonly prepared: Prepared[];
  /** Why message `firstIndex + prepared.length` failed; absent when all were prepared. */
  readonly failure?: unknown;
}

/**
 * Decodes and prepares consecutive stream messages, stopping at the first
 * that fails: what a decode worker runs for a chunk, and the inline
 * fallback. Never throws: a failure is part of the result.
 */
export function decodeAndPrepareChunk<Input extends DescMessage, Context, Prepared>(
  spec: StreamOffloadSpec<Input, Context, Prepared>,
  messages: readonly Uint8Array[],
  firstIndex: number,
  context: Context,
): ChunkResult<Prepared> {
  const prepared: Prepared[] = [];
  for (const bytes of messages) {
    try {
      prepared.push(spec.prepare(decodeMessage(spec.input, bytes), firstIndex + prepared.length, context));
    } catch (error) {
      return { prepared, failure: error };
    }
  }
  return { prepared };
}

/** Most messages of one chunk: enough to make a worker round trip (~0.1 ms) cheap per message. */
const maxChunkMessages = 64;
/** Bytes past which a chunk takes no more messages (its last may overshoot; messages may be large). */
const maxChunkBytes = 1024 * 1024;
/**
 * How long a chunk waits for more messages once it has one (or while the
 * previous chunk is decoded). grpc-js hands a call's messages over one
 * HTTP/2 DATA frame (16 KiB) per event-loop turn, so a chunk of only what
 * has arrived would rarely pass the decode pool's 16 KiB inline limit. A
 * client stream is answered once, at its end, so waiting costs its callers
 * nothing.
 */
const gatherWindowMs = 1;

const notYet = Symbol("not yet");

/** Resolves with {@link notYet} once the gather window has passed. */
function gatherWindow(): Promise<typeof notYet> {
  return new Promise((resolve) => setTimeout(resolve, gatherWindowMs, notYet));
}

/**
 * A client stream's messages, prepared by `spec`, in order. Decoded
 * messages (the HTTP port's) are prepared inline; `EncodedRequest`s (the
 * gRPC port's) go to their decoder a chunk at a time: the messages that
 * arrive within a millisecond, up to 64 (or 1 MiB). While a chunk is being
 * decoded the next one is gathered, so reading and decoding overlap.
 *
 * The iteration throws the error of the first message that fails, after
 * yielding every message before it; nothing after it is yielded. A source
 * that throws (the call was cancelled, the server is stopping) ends it
 * with that error, dropping what was read and not yet yielded: the call
 * has failed. Not pulling stops reading the source (backpressure reaches
 * the transport); ending the iteration early returns the source.
 *
 * @param context taken once per chunk, when it is sent to the decoder (once
 *   per message on the inline path)
 */
export async function* preparedMessages<Input extends DescMessage, Context, Prepared>(
  spec: StreamOffloadSpec<Input, Context, Prepared>,
  source: AsyncIterable<MessageShape<Input> | EncodedRequest>,
  context: () => Context,
): AsyncGenerator<Prepared, void, undefined> {
  const iterator = source[Symbol.asyncIterator]();
  let index = 0;
  /** The chunk being decoded, not yet yielded. */
  let decoding: Promise<ChunkResult> | undefined;
  /** The source threw (the call was cancelled, or the server is stopping): it needs no return. */
  let sourceFailed = false;
  let ended = false;
  // Every promise this loop may leave behind is marked handled at once (an
  // await still sees its rejection): a rejection nobody awaits any more
  // must not become an unhandled one, which would end the process.
  const pull = (): Promise<IteratorResult<MessageShape<Input> | EncodedRequest>> => {
    const pulled = iterator.next();
    pulled.catch(() => (sourceFailed = true));
    return pulled;
  };
  try {
    let next = pull();
    while (!ended || decoding !== undefined) {
      const chunk: EncodedRequest[] = [];
      let bytes = 0;
      let window: Promise<typeof notYet> | undefined;
      while (!ended && chunk.length < maxChunkMessages && bytes < maxChunkBytes) {
        // Wait without limit only when there is nothing else to do.
        const result = chunk.length === 0 && decoding === undefined ? await next : await Promise.race([next, (window ??= gatherWindow())]);
        if (result === notYet) break;
        if (result.done === true) {
          ended = true;
          break;
        }
        next = pull();
        if (!(result.value instanceof EncodedRequest)) {
          // Decoded by the transport: only the HTTP port does, for all of a call.
          yield spec.prepare(result.value, index++, context());
          continue;
        }
        chunk.push(result.value);
        bytes += result.value.bytes.byteLength;
      }
      const submitted = chunk.length === 0 ? undefined : submit(chunk, index, context());
      submitted?.catch(() => undefined);
      index += chunk.length;
      if (decoding !== undefined) {
        const { prepared, failure } = await decoding;
        decoding = undefined;
        yield* prepared as Prepared[];
        if (failure !== undefined) throw failure;
      }
      decoding = submitted;
    }
  } finally {
    // A source that ended or threw is left alone, as `for await` does. One
    // that is still open has a read pending (this loop reads ahead), so its
    // return runs only once that read is answered: awaiting it would hold
    // an idle call's error until the client sent another message.
    if (!ended && !sourceFailed) iterator.return?.()?.catch(() => undefined);
  }
}

/** Sends a chunk of one call's messages to their decoder. */
function submit(chunk: readonly EncodedRequest[], firstIndex: number, context: unknown): Promise<ChunkResult> {
  const { path, decoder } = chunk[0]!;
  return decoder.decodeChunk(
    path,
    chunk.map((message) => message.bytes),
    firstIndex,
    context,
  );
}

/**
 * A client-streaming handler fed with prepared messages: given the
 * transport's stream (decoded messages, or `EncodedRequest`s on the gRPC
 * port) it hands `answer` the {@link preparedMessages} of it, so both ports
 * judge every message with the same `prepare`.
 */
export function offloadableStream<Input extends DescMessage, Context, Prepared, Output>(
  spec: StreamOffloadSpec<Input, Context, Prepared>,
  context: () => Context,
  answer: (messages: AsyncIterable<Prepared>, ctx: HandlerContext) => Promise<Output>,
): (requests: AsyncIterable<MessageShape<Input>>, ctx: HandlerContext) => Promise<Output> {
  const handler = (requests: AsyncIterable<MessageShape<Input> | EncodedRequest>, ctx: HandlerContext): Promise<Output> =>
    answer(preparedMessages(spec, requests, context), ctx);
  return withOffloadSpec(handler, spec as unknown as StreamOffloadSpec) as (
    requests: AsyncIterable<MessageShape<Input>>,
    ctx: HandlerContext,
  ) => Promise<Output>;
}
