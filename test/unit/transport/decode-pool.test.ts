import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { CaptureStreamRequestSchema } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { IngestBatchRequestSchema, type Span } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { ExportTraceServiceRequestSchema } from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { InvalidFieldError, UnavailableError } from "../../../server/core/errors.js";
import { defaultMirrorLimits } from "../../../server/core/mirror/model.js";
import type { CaptureContext } from "../../../server/rpc/mirror-mapping.js";
import { captureStreamSpec, ingestBatchSpec, otlpExportSpec } from "../../../server/rpc/offload-specs.js";
import { decodeAndPrepareChunk } from "../../../server/rpc/offloaded-streams.js";
import { UndecodableRequestError } from "../../../server/rpc/offloaded-decoding.js";
import { spansFromExportRequest } from "../../../server/rpc/otlp-mapping.js";
import { spansOfBatch } from "../../../server/rpc/tracing-mapping.js";
import { encodeSpan } from "../../../server/store/tracing-codec.js";
import { DecodePool, offloadChunksFrom, type DecodePoolOptions } from "../../../server/transport/decode-pool.js";
import { fromWireError, toWireError } from "../../../server/transport/decode-wire.js";
import { within } from "../../fixtures/streams.js";
import { newTraceId, spanMessage } from "../../fixtures/tracing.js";

const silent = pino({ level: "silent" });
const pools: DecodePool[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.close();
});

function pool(options: Partial<DecodePoolOptions> = {}): DecodePool {
  const created = new DecodePool({ workers: 1, logger: silent, ...options });
  pools.push(created);
  return created;
}

/** An IngestBatch of `count` spans with tags and a log each: ~100 bytes a span. */
function batch(count: number, adjust: (span: Span, i: number) => void = () => undefined): Uint8Array {
  const trace = newTraceId();
  const spans = Array.from({ length: count }, (_, i) => {
    const span = spanMessage(
      { trace, id: `s${i}`, ...(i === 0 ? {} : { parent: "s0" }), service: `svc-${i % 3}`, start: i, end: i + 0.5, tags: { "http.route": `/r/${i}` } },
      { logs: [{ time: spanMessage({ trace, id: "t", start: i + 0.25, end: i + 0.25 }).startTime, fields: { event: "retry" } }] },
    );
    adjust(span, i);
    return span;
  });
  return toBinary(IngestBatchRequestSchema, create(IngestBatchRequestSchema, { spans }));
}

/** What a promise rejected with (fails when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return within(
    promise.then(
      (value) => {
        throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
      },
      (error: unknown) => error,
    ),
    5000,
    "decode",
  );
}

describe("DecodePool", () => {
  it("decodes a large IngestBatch in a worker into exactly the spans the inline path makes", async () => {
    const bytes = batch(300);
    expect(bytes.byteLength).toBeGreaterThan(16 * 1024);
    const decoder = pool();
    const spans = await within(decoder.decode(ingestBatchSpec.path, bytes), 5000, "decode");
    const decoded = spansOfBatch(fromBinary(IngestBatchRequestSchema, bytes));
    expect(spans).toStrictEqual(decoded.map(encodeSpan));
    expect((spans as unknown[]).length).toBe(300);
    expect(decoder.counts).toEqual({ inline: 0, worker: 1 });
    expect(decoder.inFlight).toBe(0);
  });

  it("is ready once its workers have loaded, or have failed to", async () => {
    await within(pool({ workers: 2 }).ready(), 5000, "ready");
    await within(pool({ workerUrl: new URL("../../fixtures/workers/missing-worker.mjs", import.meta.url) }).ready(), 5000, "ready after a failed start");
  });

  it("decodes small requests on the event loop", async () => {
    const bytes = batch(3);
    const decoder = pool();
    await expect(decoder.decode(ingestBatchSpec.path, bytes)).resolves.toEqual(ingestBatchSpec.prepare(fromBinary(IngestBatchRequestSchema, bytes)));
    expect(decoder.counts).toEqual({ inline: 1, worker: 0 });
  });

  it("answers a bad span as the InvalidFieldError the inline path throws, field and message included", async () => {
    const bytes = batch(300, (span, i) => {
      if (i === 250) span.traceId = "not-hex";
    });
    const inline = (() => {
      try {
        spansOfBatch(fromBinary(IngestBatchRequestSchema, bytes));
      } catch (error) {
        return error as InvalidFieldError;
      }
      throw new Error("the inline path accepted the batch");
    })();
    const error = await rejection(pool().decode(ingestBatchSpec.path, bytes));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).field).toBe(inline.field);
    expect((error as InvalidFieldError).field).toMatch(/^spans\[250\]/);
    expect((error as Error).message).toBe(inline.message);
  });

  it("answers bytes that are not the request message with UndecodableRequestError, inline and in a worker", async () => {
    const decoder = pool();
    for (const bytes of [new Uint8Array([0x0a, 0xff]), new Uint8Array(20_000).fill(0xff)]) {
      const error = await rejection(decoder.decode(ingestBatchSpec.path, bytes));
      expect(error).toBeInstanceOf(UndecodableRequestError);
      expect((error as UndecodableRequestError).field).toBe("request");
      expect((error as Error).message).toMatch(/^request is not a valid latticeforge\.tracing\.v1\.IngestBatchRequest: \S/);
    }
    expect(decoder.counts).toEqual({ inline: 1, worker: 1 });
  });

  it("maps an OTLP export with invalid spans as the inline path does: valid spans kept, the rest counted", async () => {
    const spans = Array.from({ length: 200 }, (_, i) => ({
      traceId: new Uint8Array(16).fill(i === 7 ? 0 : 1),
      spanId: new Uint8Array(8).fill(i + 1),
      name: `op-${i}`,
      startTimeUnixNano: 1_700_000_000_000_000_000n + BigInt(i),
      endTimeUnixNano: 1_700_000_000_000_000_100n + BigInt(i),
      attributes: [{ key: "http.route", value: { value: { case: "stringValue" as const, value: `/route/${i}` } } }],
    }));
    const request = create(ExportTraceServiceRequestSchema, {
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "checkout" } } }] },
          scopeSpans: [{ spans }],
        },
      ],
    });
    const bytes = toBinary(ExportTraceServiceRequestSchema, request);
    expect(bytes.byteLength).toBeGreaterThan(16 * 1024);
    const mapped = await within(pool().decode(otlpExportSpec.path, bytes), 5000, "decode");
    const inline = spansFromExportRequest(fromBinary(ExportTraceServiceRequestSchema, bytes));
    expect(mapped).toStrictEqual({ ...inline, spans: inline.spans.map(encodeSpan) });
    expect(mapped).toMatchObject({ rejected: 1 });
  });

  const standIn = new URL("../../fixtures/workers/crashing-decode-worker.mjs", import.meta.url);

  /** A logger whose error lines land in `lines`. */
  function recording(lines: Record<string, unknown>[]) {
    return pino({ level: "error" }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  }

  it("fails the tasks of a worker that dies, logs why, and decodes on with a new worker at once", async () => {
    const lines: Record<string, unknown>[] = [];
    const decoder = pool({ logger: recording(lines), inlineBelowBytes: 0, workerUrl: standIn });
    await expect(within(decoder.decode(ingestBatchSpec.path, new Uint8Array(3)), 5000, "decode")).resolves.toMatchObject({ bytes: 3 });
    const error = await rejection(decoder.decode(ingestBatchSpec.path, new Uint8Array([0xee])));
    expect((error as Error).message).toBe("decode worker exited with code 3");
    expect(error).not.toBeInstanceOf(InvalidFieldError);
    expect(lines).toEqual([
      expect.objectContaining({ msg: "decode worker failed; starting another", inFlight: 1, restartInMs: 0, err: expect.objectContaining({ message: "decode worker exited with code 3" }) }),
    ]);
    // Until the new worker is up, requests are decoded inline (where 5 zero bytes do not decode).
    const fromWorker = () => decoder.decode(ingestBatchSpec.path, new Uint8Array(5)).catch(() => "decoded inline");
    await expect.poll(fromWorker, { timeout: 5000 }).toMatchObject({ bytes: 5 });
  });

  it("stops and replaces a worker that does not answer within the task timeout", async () => {
    const lines: Record<string, unknown>[] = [];
    const decoder = pool({ logger: recording(lines), inlineBelowBytes: 0, taskTimeoutMs: 200, workerUrl: standIn });
    await expect(within(decoder.decode(ingestBatchSpec.path, new Uint8Array(3)), 5000, "decode")).resolves.toMatchObject({ bytes: 3 });
    const started = performance.now();
    const error = await rejection(decoder.decode(ingestBatchSpec.path, new Uint8Array([0xef])));
    expect((error as Error).message).toBe("decode worker did not answer within 200 ms");
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(lines).toEqual([expect.objectContaining({ msg: "decode worker failed; starting another", inFlight: 1, restartInMs: 0 })]);
    const fromWorker = () => decoder.decode(ingestBatchSpec.path, new Uint8Array(4)).catch(() => "decoded inline");
    await expect.poll(fromWorker, { timeout: 5000 }).toMatchObject({ bytes: 4 });
  });

  it("decodes inline while a worker that cannot start waits, with growing delays, to be restarted", async () => {
    const lines: Record<string, unknown>[] = [];
    const decoder = pool({ logger: recording(lines), inlineBelowBytes: 0, workerUrl: new URL("../../fixtures/workers/missing-worker.mjs", import.meta.url) });
    await expect.poll(() => lines.length, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    expect(lines.slice(0, 3).map((line) => line.restartInMs)).toEqual([100, 200, 400]);
    expect(lines[0]!.err).toMatchObject({ message: expect.stringContaining("missing-worker.mjs") });
    const bytes = batch(300);
    await expect(decoder.decode(ingestBatchSpec.path, bytes)).resolves.toStrictEqual(ingestBatchSpec.prepare(fromBinary(IngestBatchRequestSchema, bytes)));
    expect(decoder.counts).toEqual({ inline: 1, worker: 0 });
  });

  it("after close, fails what the workers were decoding and every new request with UNAVAILABLE", async () => {
    const decoder = pool();
    const inFlight = rejection(decoder.decode(ingestBatchSpec.path, batch(300)));
    expect(decoder.inFlight).toBe(1);
    await decoder.close();
    expect(await inFlight).toBeInstanceOf(UnavailableError);
    expect(await rejection(decoder.decode(ingestBatchSpec.path, batch(1)))).toBeInstanceOf(UnavailableError);
  });

  it("spreads concurrent requests over its workers", async () => {
    const decoder = pool({ workers: 2, inlineBelowBytes: 0, workerUrl: standIn });
    const decoding = [1, 2, 3, 4].map(() => decoder.decode(ingestBatchSpec.path, new Uint8Array(8)));
    expect(decoder.inFlight).toBe(4);
    const answers = (await within(Promise.all(decoding), 5000, "decodes")) as { thread: number }[];
    const threads = answers.map((answer) => answer.thread);
    expect(new Set(threads).size).toBe(2);
    expect(threads.filter((thread) => thread === threads[0])).toHaveLength(2);
    expect(decoder.counts.worker).toBe(4);
  });
});

describe("errors across the worker boundary", () => {
  it("keep their domain class, field and message; anything else stays a plain Error with its stack", () => {
    const invalid = fromWireError(toWireError(new InvalidFieldError("spans[2].kind", "is required")));
    expect(invalid).toBeInstanceOf(InvalidFieldError);
    expect(invalid).toMatchObject({ field: "spans[2].kind", reason: "is required", message: "spans[2].kind is required" });
    const unavailable = fromWireError(toWireError(new UnavailableError("busy")));
    expect(unavailable).toBeInstanceOf(UnavailableError);
    expect(unavailable.message).toBe("busy");
    const undecodable = fromWireError(toWireError(new UndecodableRequestError("a.B", "premature EOF")));
    expect(undecodable).toBeInstanceOf(UndecodableRequestError);
    expect(undecodable).toMatchObject({ typeName: "a.B", detail: "premature EOF" });
    const bug = new TypeError("cannot read x of undefined");
    const restored = fromWireError(toWireError(bug));
    expect(restored.constructor).toBe(Error);
    expect(restored.message).toBe("cannot read x of undefined");
    expect(restored.stack).toBe(bug.stack);
  });

  it("prepares a chunk of CaptureStream messages in a worker exactly as inline, stopping at the first bad one", async () => {
    const context: CaptureContext = { nowMs: 1_800_000_000_000, limits: defaultMirrorLimits() };
    const messages = Array.from({ length: 40 }, (_, i) =>
      toBinary(
        CaptureStreamRequestSchema,
        create(CaptureStreamRequestSchema, {
          capture: {
            requestId: `r${i}`,
            sourceService: "orders",
            intent: "create",
            method: "POST",
            path: i === 25 ? "no-slash" : "/orders",
            payload: { orderId: `o${i}`, note: "x".repeat(1024) },
          },
        }),
      ),
    );
    const decoder = pool();
    const inWorker = await within(decoder.decodeChunk(captureStreamSpec.path, messages, 100, context), 5000, "chunk");
    expect(decoder.counts).toEqual({ inline: 0, worker: 1 });
    const inline = decodeAndPrepareChunk(captureStreamSpec, messages, 100, context);
    expect(inWorker.prepared).toHaveLength(25);
    expect(inWorker.prepared).toStrictEqual(inline.prepared);
    expect(inWorker.failure).toBeInstanceOf(InvalidFieldError);
    expect(inWorker.failure).toMatchObject({ field: "capture[125].path", message: (inline.failure as Error).message });
    // A small chunk stays on the event loop.
    await decoder.decodeChunk(captureStreamSpec.path, messages.slice(0, 2), 0, context);
    expect(decoder.counts).toEqual({ inline: 1, worker: 1 });
  });

  it("offloads a chunk of a few small stream messages, and fails alone a chunk whose context cannot cross threads", async () => {
    const context: CaptureContext = { nowMs: 1_800_000_000_000, limits: defaultMirrorLimits() };
    const small = Array.from({ length: offloadChunksFrom }, (_, i) =>
      toBinary(CaptureStreamRequestSchema, create(CaptureStreamRequestSchema, { capture: { requestId: `r${i}`, sourceService: "orders", intent: "i" } })),
    );
    expect(small.reduce((sum, bytes) => sum + bytes.byteLength, 0)).toBeLessThan(1024);
    const decoder = pool();
    const result = await within(decoder.decodeChunk(captureStreamSpec.path, small, 0, context), 5000, "chunk");
    expect(result.prepared).toHaveLength(offloadChunksFrom);
    expect(decoder.counts).toEqual({ inline: 0, worker: 1 });

    const unclonable = { ...context, now: () => 0 };
    expect(await rejection(decoder.decodeChunk(captureStreamSpec.path, small, 0, unclonable))).toMatchObject({ name: "DataCloneError" });
    expect(decoder.inFlight).toBe(0);
    await expect(within(decoder.decodeChunk(captureStreamSpec.path, small, 0, context), 5000, "chunk")).resolves.toMatchObject({
      prepared: expect.any(Array) as unknown,
    });
  });
});
