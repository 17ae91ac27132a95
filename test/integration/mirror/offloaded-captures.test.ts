/**
 * CaptureStream messages decoded and validated by the decode workers a
 * chunk at a time (`--decode-workers`), on the gRPC port: the answers, the
 * buffers and the errors must be exactly what the Connect port (which
 * decodes on the event loop) gives for the same stream.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  CaptureStreamRequestSchema,
  CaptureStreamResponseSchema,
  MirrorService,
  type CaptureStreamResponse,
} from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { controlPlanesPerTest } from "../../fixtures/control-plane.js";
import { decodeCounts } from "../../fixtures/decode-metrics.js";
import { callOptions as opts, capture, mirrorConfig, type CaptureInit, type MirrorClient } from "../../fixtures/mirror.js";
import { within } from "../../fixtures/streams.js";
import { rpcError } from "../../fixtures/tracing.js";

const start = controlPlanesPerTest();

/**
 * A capture with a 20 KiB payload: past the decode pool's 16 KiB inline
 * limit on its own, so every chunk goes to a worker however few messages
 * it gathers (in one process, client and server share the event loop and
 * messages arrive a few at a time; chunking itself is unit-tested).
 */
function largeCapture(requestId: string, overrides: Partial<CaptureInit> = {}): CaptureInit {
  return capture(requestId, { payload: { orderId: requestId, note: "x".repeat(20 * 1024), lines: [1, 2, 3] }, ...overrides });
}

async function* stream(captures: readonly CaptureInit[]): AsyncGenerator<{ capture: CaptureInit }> {
  for (const item of captures) yield { capture: item };
}

/**
 * A CaptureStream over the gRPC port from a plain grpc-js client that
 * writes every message at once (as a proxy flushing a burst does), so they
 * reach the server together and make full chunks.
 */
function burstCaptureStream(
  address: string,
  captures: readonly CaptureInit[],
  { end = true }: { end?: boolean } = {},
): Promise<CaptureStreamResponse | ServiceError> {
  const client = new Client(address, credentials.createInsecure());
  const answer = new Promise<CaptureStreamResponse | ServiceError>((resolve) => {
    const call = client.makeClientStreamRequest(
      `/${MirrorService.typeName}/CaptureStream`,
      (message: Uint8Array) => Buffer.from(message),
      (bytes: Buffer) => fromBinary(CaptureStreamResponseSchema, bytes),
      new Metadata(),
      { deadline: Date.now() + 10_000 },
      (error, response) => resolve(error ?? response!),
    );
    for (const item of captures) call.write(toBinary(CaptureStreamRequestSchema, create(CaptureStreamRequestSchema, { capture: item })));
    if (end) call.end();
  });
  return within(answer, 11_000, "CaptureStream").finally(() => client.close());
}

const drainIds = async (mirror: MirrorClient, mirrorId: string): Promise<string[]> =>
  (await mirror.drain({ mirrorId, limit: 10_000 }, opts)).requests.map((r) => r.requestId);

describe("offloaded CaptureStream", () => {
  it("captures a stream decoded by workers in order, into every mirror, as the Connect port does", async () => {
    const server = await start();
    const grpc = server.grpc(MirrorService);
    const connect = server.http(MirrorService, { httpVersion: "2" });
    await grpc.addMirror({ mirror: mirrorConfig("a", "http://127.0.0.1:9") }, opts);
    await grpc.addMirror({ mirror: mirrorConfig("b", "http://127.0.0.1:9", { redactHeaders: ["x-session"] }) }, opts);
    const captures = Array.from({ length: 120 }, (_, i) => largeCapture(`g-${i}`, { headers: { "x-session": `s${i}` } }));

    const answer = (await burstCaptureStream(server.grpcAddress, captures)) as CaptureStreamResponse;
    expect(answer.captures).toBe(120);
    expect(answer.mirrors.map(({ mirrorId, queued, dropped }) => ({ mirrorId, queued, dropped }))).toEqual([
      { mirrorId: "a", queued: 120, dropped: 0 },
      { mirrorId: "b", queued: 120, dropped: 0 },
    ]);
    expect((await decodeCounts(server)).worker).toBeGreaterThan(0);
    const drained = (await grpc.drain({ mirrorId: "b", limit: 2 }, opts)).requests;
    expect(drained.map((r) => [r.requestId, r.headers["x-session"]])).toEqual([
      ["g-0", "[REDACTED]"],
      ["g-1", "[REDACTED]"],
    ]);
    expect(drained[0]!.payload).toEqual({ orderId: "g-0", note: "x".repeat(20 * 1024), lines: [1, 2, 3] });
    expect(await drainIds(grpc, "a")).toEqual(captures.map((c) => c.requestId));

    const viaConnect = await connect.captureStream(stream(captures.slice(0, 10)), opts);
    expect(viaConnect).toMatchObject({ captures: 10 });
  });

  it("fails at an invalid capture decoded by a worker naming capture[i], keeping every capture before it, as Connect does", async () => {
    const server = await start();
    const grpc = server.grpc(MirrorService);
    const connect = server.http(MirrorService, { httpVersion: "2" });
    await grpc.addMirror({ mirror: mirrorConfig("a", "http://127.0.0.1:9") }, opts);
    const captures = Array.from({ length: 100 }, (_, i) => largeCapture(`g-${i}`, i === 70 ? { path: "no-slash" } : {}));

    const viaGrpc = (await burstCaptureStream(server.grpcAddress, captures)) as ServiceError;
    expect(viaGrpc.code).toBe(status.INVALID_ARGUMENT);
    expect((await decodeCounts(server)).worker).toBeGreaterThan(0);
    expect(await drainIds(grpc, "a")).toEqual(captures.slice(0, 70).map((c) => c.requestId));
    const viaConnect = await rpcError(connect.captureStream(stream(captures), opts));
    expect(await drainIds(grpc, "a")).toEqual(captures.slice(0, 70).map((c) => c.requestId));
    expect(viaConnect.code).toBe(Code.InvalidArgument);
    expect(viaGrpc.details).toBe(viaConnect.message);
    expect(viaGrpc.details).toMatch(/^capture\[70\]\.path must start with \//);
  });

  it("answers an invalid capture at once while the proxy keeps its stream open", async () => {
    const server = await start();
    const grpc = server.grpc(MirrorService);
    await grpc.addMirror({ mirror: mirrorConfig("a", "http://127.0.0.1:9") }, opts);
    const captures = [largeCapture("g-0"), largeCapture("g-1", { path: "no-slash" })];
    const answer = (await burstCaptureStream(server.grpcAddress, captures, { end: false })) as ServiceError;
    expect(answer.code).toBe(status.INVALID_ARGUMENT);
    expect(answer.details).toMatch(/^capture\[1\]\.path must start with \//);
    expect(await drainIds(grpc, "a")).toEqual(["g-0"]);
  });
});
