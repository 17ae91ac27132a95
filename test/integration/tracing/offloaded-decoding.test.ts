/**
 * Large ingest requests decoded by the decode workers (`--decode-workers`):
 * IngestBatch and OTLP Export over the gRPC port, OTLP/HTTP protobuf bodies
 * over the HTTP port. They must answer exactly as the inline path does
 * (the Connect port decodes on the event loop), bad input included.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { IngestBatchRequestSchema, TraceCollectorService, type Span } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { ExportTraceServiceRequestSchema, TraceService } from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { controlPlanesPerTest, type TestControlPlane } from "../../fixtures/control-plane.js";
import { decodeCounts } from "../../fixtures/decode-metrics.js";
import { rawCall } from "../../fixtures/raw-calls.js";
import { callOptions as opts, newTraceId, rpcError, spanId, spanMessage } from "../../fixtures/tracing.js";

const start = controlPlanesPerTest();

/** One trace of `count` spans (a root and its children), with tags: well over the 16 KiB inline limit at 300. */
function traceOf(count: number): { trace: string; spans: Span[] } {
  const trace = newTraceId();
  const spans = Array.from({ length: count }, (_, i) =>
    spanMessage({
      trace,
      id: `s${i}`,
      ...(i === 0 ? {} : { parent: "s0" }),
      service: `svc-${i % 4}`,
      start: i === 0 ? 0 : i,
      end: i === 0 ? count + 1 : i + 0.5,
      tags: { "http.route": `/orders/${i}`, "peer.service": "db" },
    }),
  );
  return { trace, spans };
}

const ingestBatchPath = `/${TraceCollectorService.typeName}/IngestBatch`;

describe("offloaded decoding", () => {
  let server: TestControlPlane;

  it("ingests a 300-span IngestBatch decoded in a worker and serves it back whole", async () => {
    server = await start();
    const { trace, spans } = traceOf(300);
    expect(toBinary(IngestBatchRequestSchema, create(IngestBatchRequestSchema, { spans })).byteLength).toBeGreaterThan(16 * 1024);
    const tracing = server.grpc(TraceCollectorService);
    const answer = await tracing.ingestBatch({ spans }, opts);
    expect(answer).toMatchObject({ ingested: 300, dropped: 0, duplicates: 0 });
    expect(await decodeCounts(server)).toEqual({ inline: 0, worker: 1 });
    const { trace: tree } = await tracing.getTrace({ traceId: trace }, opts);
    expect(tree?.spans).toHaveLength(300);
    expect(tree?.rootSpan?.spanId).toBe(spanId("s0"));
    // A small batch stays on the event loop.
    await tracing.ingestBatch({ spans: traceOf(2).spans }, opts);
    expect(await decodeCounts(server)).toEqual({ inline: 1, worker: 1 });
  });

  it("refuses a large batch with one bad span exactly as the Connect port does, storing none of it", async () => {
    server = await start();
    const { trace, spans } = traceOf(300);
    spans[250]!.status = 0;
    const overGrpc = await rpcError(server.grpc(TraceCollectorService).ingestBatch({ spans }, opts));
    const overConnect = await rpcError(server.http(TraceCollectorService).ingestBatch({ spans }, opts));
    expect(overGrpc).toEqual({ code: Code.InvalidArgument, message: "spans[250] is missing required fields: status" });
    expect(overConnect).toEqual(overGrpc);
    expect(await decodeCounts(server)).toEqual({ inline: 0, worker: 1 });
    expect((await rpcError(server.grpc(TraceCollectorService).getTrace({ traceId: trace }, opts))).code).toBe(Code.NotFound);
  });

  it("answers request bytes that do not decode with INVALID_ARGUMENT, large or small", async () => {
    server = await start();
    for (const bytes of [new Uint8Array(20_000).fill(0xff), new Uint8Array([0x0a, 0xff])]) {
      const error = await rawCall(server.grpcAddress, ingestBatchPath, "unary", [bytes]);
      expect(error?.code).toBe(status.INVALID_ARGUMENT);
      expect(error?.details).toMatch(/^request is not a valid latticeforge\.tracing\.v1\.IngestBatchRequest: \S/);
    }
    expect(await decodeCounts(server)).toEqual({ inline: 1, worker: 1 });
  });

  it("maps a large OTLP export in a worker over gRPC and OTLP/HTTP, and answers an undecodable OTLP/HTTP body 400", async () => {
    server = await start();
    const exportOf = (service: string, traceByte: number) => {
      const traceId = new Uint8Array(16).fill(traceByte);
      const spans = Array.from({ length: 300 }, (_, i) => ({
        traceId,
        spanId: Uint8Array.of(0, 0, 0, 0, 0, 0, (i >> 8) + 1, i & 0xff),
        ...(i === 0 ? {} : { parentSpanId: Uint8Array.of(0, 0, 0, 0, 0, 0, 1, 0) }),
        name: `op-${i}`,
        startTimeUnixNano: 1_700_000_000_000_000_000n + BigInt(i),
        endTimeUnixNano: 1_700_000_000_000_100_000n,
        attributes: [{ key: "http.route", value: { value: { case: "stringValue" as const, value: `/orders/${i}` } } }],
      }));
      const request = create(ExportTraceServiceRequestSchema, {
        resourceSpans: [{ resource: { attributes: [{ key: "service.name", value: { value: { case: "stringValue", value: service } } }] }, scopeSpans: [{ spans }] }],
      });
      return { request, traceId: Buffer.from(traceId).toString("hex") };
    };
    const storedSpans = async (traceId: string) => (await server.grpc(TraceCollectorService).getTrace({ traceId }, opts)).trace?.spans.length;
    const viaGrpc = exportOf("grpc-exporter", 0x11);
    const overGrpc = await server.grpc(TraceService).export(viaGrpc.request, opts);
    expect(overGrpc.partialSuccess?.errorMessage).toBeUndefined();
    expect(await storedSpans(viaGrpc.traceId)).toBe(300);
    const viaHttp = exportOf("http-exporter", 0x22);
    const body = toBinary(ExportTraceServiceRequestSchema, viaHttp.request);
    const overHttp = await fetch(`${server.httpBaseUrl}/v1/traces`, { method: "POST", headers: { "content-type": "application/x-protobuf" }, body });
    expect(overHttp.status).toBe(200);
    expect(await storedSpans(viaHttp.traceId)).toBe(300);
    const garbage = await fetch(`${server.httpBaseUrl}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: "{}",
    });
    expect(garbage.status).toBe(200); // an empty JSON export is a full success, decoded inline
    const undecodable = await fetch(`${server.httpBaseUrl}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/x-protobuf" },
      body: new Uint8Array(20_000).fill(0xff),
    });
    expect(undecodable.status).toBe(400);
    expect(await decodeCounts(server)).toEqual({ inline: 0, worker: 3 });
  });

  it("with --decode-workers 0 decodes everything on the event loop, alike, and says nothing about workers", async () => {
    server = await start({ "decode-workers": "0" });
    const { trace, spans } = traceOf(300);
    await expect(server.grpc(TraceCollectorService).ingestBatch({ spans }, opts)).resolves.toMatchObject({ ingested: 300 });
    expect((await server.grpc(TraceCollectorService).getTrace({ traceId: trace }, opts)).trace?.spans).toHaveLength(300);
    expect(await decodeCounts(server)).toEqual({});
    const error = await rawCall(server.grpcAddress, ingestBatchPath, "unary", [new Uint8Array(20_000).fill(0xff)]);
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(/^request is not a valid latticeforge\.tracing\.v1\.IngestBatchRequest: \S/);
  });
});
