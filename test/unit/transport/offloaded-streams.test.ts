import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CaptureStreamRequestSchema, MirrorService, type CaptureStreamRequest } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { InvalidFieldError, UnavailableError } from "../../../server/core/errors.js";
import { EncodedRequest, UndecodableRequestError, type RequestDecoder } from "../../../server/rpc/offloaded-decoding.js";
import {
  decodeAndPrepareChunk,
  preparedMessages,
  streamOffloadSpec,
  type ChunkResult,
} from "../../../server/rpc/offloaded-streams.js";
import { within } from "../../fixtures/streams.js";

/** A spec that prepares a message into "index:request_id@context", refusing request ids starting with "bad". */
const spec = streamOffloadSpec(MirrorService.method.captureStream, (message: CaptureStreamRequest, index, context: string) => {
  const requestId = message.capture?.requestId ?? "";
  if (requestId.startsWith("bad")) throw new InvalidFieldError(`capture[${index}].request_id`, "is bad");
  return `${index}:${requestId}@${context}`;
});

function message(requestId: string): CaptureStreamRequest {
  return create(CaptureStreamRequestSchema, { capture: { requestId } });
}

/** A decoder that prepares chunks inline and records them; `delayMs` holds each answer back. */
function recordingDecoder(delayMs = 0): RequestDecoder & { chunks: { firstIndex: number; size: number; context: unknown }[] } {
  const chunks: { firstIndex: number; size: number; context: unknown }[] = [];
  return {
    chunks,
    decode: () => Promise.reject(new Error("no unary spec here")),
    async decodeChunk(_path, messages, firstIndex, context): Promise<ChunkResult> {
      chunks.push({ firstIndex, size: messages.length, context });
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      return decodeAndPrepareChunk(spec, messages, firstIndex, context as string);
    },
  };
}

/** A client stream of these request ids as the gRPC port delivers it: bytes, all available at once. */
async function* encoded(requestIds: readonly string[], decoder: RequestDecoder, onReturn?: () => void): AsyncGenerator<EncodedRequest> {
  try {
    for (const id of requestIds) yield new EncodedRequest(spec.path, toBinary(CaptureStreamRequestSchema, message(id)), decoder);
  } finally {
    onReturn?.();
  }
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<{ items: T[]; error?: unknown }> {
  const items: T[] = [];
  try {
    for await (const item of iterable) items.push(item);
    return { items };
  } catch (error) {
    return { items, error };
  }
}

/**
 * A source that yields one message, then answers every later read with
 * `later()`; its `return()` never settles (as an idle call's would not
 * while a read is pending). Counts reads and returns.
 */
function oneThen(
  requestId: string,
  later: () => Promise<IteratorResult<EncodedRequest>>,
): AsyncIterable<EncodedRequest> & { pulls: number; returns: number } {
  const decoder = recordingDecoder();
  const source = {
    pulls: 0,
    returns: 0,
    [Symbol.asyncIterator]: () => ({
      next: (): Promise<IteratorResult<EncodedRequest>> =>
        ++source.pulls === 1
          ? Promise.resolve({ done: false, value: new EncodedRequest(spec.path, toBinary(CaptureStreamRequestSchema, message(requestId)), decoder) })
          : later(),
      return: (): Promise<IteratorResult<EncodedRequest>> => {
        source.returns++;
        return new Promise(() => undefined);
      },
    }),
  };
  return source;
}

const ids = (count: number, prefix = "r"): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

describe("preparedMessages", () => {
  it("prepares a stream's bytes in chunks of at most 64, in order, with consecutive indexes and one context per chunk", async () => {
    const decoder = recordingDecoder();
    let chunk = 0;
    const { items, error } = await within(collect(preparedMessages(spec, encoded(ids(150), decoder), () => `c${chunk++}`)), 5000, "stream");
    expect(error).toBeUndefined();
    expect(items).toHaveLength(150);
    expect(items.map((item) => item.split("@")[0])).toEqual(ids(150).map((id, i) => `${i}:${id}`));
    expect(decoder.chunks.map((c) => c.size)).toEqual([64, 64, 22]);
    expect(decoder.chunks.map((c) => c.firstIndex)).toEqual([0, 64, 128]);
    expect(decoder.chunks.map((c) => c.context)).toEqual(["c0", "c1", "c2"]);
    expect(new Set(items.slice(0, 64).map((item) => item.split("@")[1]))).toEqual(new Set(["c0"]));
  });

  it("sends what has arrived without waiting for a full chunk", async () => {
    const decoder = recordingDecoder();
    async function* trickle(): AsyncGenerator<EncodedRequest> {
      for (const id of ids(3)) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        yield new EncodedRequest(spec.path, toBinary(CaptureStreamRequestSchema, message(id)), decoder);
      }
    }
    const { items } = await within(collect(preparedMessages(spec, trickle(), () => "c")), 5000, "stream");
    expect(items).toEqual(["0:r0@c", "1:r1@c", "2:r2@c"]);
    expect(decoder.chunks.map((c) => c.size)).toEqual([1, 1, 1]);
  });

  it("yields every message before the first that fails, then throws its error, and yields nothing after it", async () => {
    const decoder = recordingDecoder();
    const requestIds = [...ids(100), "bad-100", ...ids(50, "after")];
    const { items, error } = await within(collect(preparedMessages(spec, encoded(requestIds, decoder), () => "c")), 5000, "stream");
    expect(items).toHaveLength(100);
    expect(items.at(-1)).toBe("99:r99@c");
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).field).toBe("capture[100].request_id");
  });

  it("fails bytes that are not the stream's message as UndecodableRequestError after the messages before them", async () => {
    const decoder = recordingDecoder();
    async function* withGarbage(): AsyncGenerator<EncodedRequest> {
      yield* encoded(ids(2), decoder);
      yield new EncodedRequest(spec.path, new Uint8Array([0xff, 0xff, 0xff]), decoder);
    }
    const { items, error } = await within(collect(preparedMessages(spec, withGarbage(), () => "c")), 5000, "stream");
    expect(items).toEqual(["0:r0@c", "1:r1@c"]);
    expect(error).toBeInstanceOf(UndecodableRequestError);
  });

  it("prepares decoded messages (the HTTP port's) inline, one context each", async () => {
    async function* decoded(): AsyncGenerator<CaptureStreamRequest> {
      for (const id of ids(3)) yield message(id);
    }
    let taken = 0;
    const { items } = await collect(preparedMessages(spec, decoded(), () => `c${taken++}`));
    expect(items).toEqual(["0:r0@c0", "1:r1@c1", "2:r2@c2"]);
  });

  it("throws the decoder's rejection (a worker that died) and leaves no rejection unhandled", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      let calls = 0;
      const failing: RequestDecoder = {
        decode: () => Promise.reject(new Error("unused")),
        decodeChunk: (_path, messages, firstIndex, context) =>
          ++calls === 1
            ? new Promise((resolve) => setTimeout(() => resolve(decodeAndPrepareChunk(spec, messages, firstIndex, context as string)), 10))
            : Promise.reject(new UnavailableError("server shutting down")),
      };
      async function* twoChunks(): AsyncGenerator<EncodedRequest> {
        yield* encoded(ids(64), failing);
        await new Promise((resolve) => setTimeout(resolve, 1));
        yield* encoded(ids(64, "s"), failing);
        await new Promise((resolve) => setTimeout(resolve, 1));
        yield* encoded(ids(64, "t"), failing);
      }
      const { items, error } = await within(collect(preparedMessages(spec, twoChunks(), () => "c")), 5000, "stream");
      expect(items).toHaveLength(64);
      expect(error).toBeInstanceOf(UnavailableError);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("throws what the source throws without returning it (an idle call's return would wait for its next message)", async () => {
    const source = oneThen("r0", () => Promise.reject(new UnavailableError("server shutting down")));
    // The call is over: what was gathered but not yet prepared is not wanted.
    const { error } = await within(collect(preparedMessages(spec, source, () => "c")), 5000, "stream");
    expect(error).toBeInstanceOf(UnavailableError);
    expect(source.pulls).toBe(2);
    expect(source.returns).toBe(0);
  });

  it("throws at a bad message at once, though the client then sends nothing (its pending read never answers)", async () => {
    const source = oneThen("bad-0", () => new Promise(() => undefined));
    const { items, error } = await within(collect(preparedMessages(spec, source, () => "c")), 5000, "stream");
    expect(items).toEqual([]);
    expect((error as InvalidFieldError).field).toBe("capture[0].request_id");
    expect(source.returns).toBe(1);
  });

  it("returns the source when the consumer stops early", async () => {
    const decoder = recordingDecoder();
    let returned = false;
    const prepared = preparedMessages(
      spec,
      encoded(ids(200), decoder, () => (returned = true)),
      () => "c",
    );
    const seen: string[] = [];
    for await (const item of prepared) {
      seen.push(item);
      if (seen.length === 10) break;
    }
    expect(seen).toHaveLength(10);
    expect(returned).toBe(true);
  });

  it("overlaps reading with decoding: the next chunk is gathered while one is decoded", async () => {
    const decoder = recordingDecoder(30);
    let pulled = 0;
    async function* counted(): AsyncGenerator<EncodedRequest> {
      for (const id of ids(128)) {
        pulled++;
        yield new EncodedRequest(spec.path, toBinary(CaptureStreamRequestSchema, message(id)), decoder);
      }
    }
    const prepared = preparedMessages(spec, counted(), () => "c");
    const first = await within(prepared.next(), 5000, "first message");
    expect(first.value).toBe("0:r0@c");
    // The first chunk's 64 came back; the second 64 were read and sent meanwhile.
    expect(pulled).toBe(128);
    expect(decoder.chunks.map((c) => c.firstIndex)).toEqual([0, 64]);
    await prepared.return();
  });
});
