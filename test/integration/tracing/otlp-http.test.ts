/**
 * OTLP/HTTP `POST /v1/traces` over the real HTTP port, with requests built by
 * hand and sent with fetch: partial success in both encodings, gzip, and the
 * status codes the OTLP/HTTP specification assigns (405, 413, 415, 400),
 * each with a `google.rpc.Status` body.
 *
 * The server runs with `--max-message-bytes 65536`, the body limit.
 */
import { randomBytes } from "node:crypto";
import { connect, constants } from "node:http2";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StatusSchema } from "../../../gen/google/rpc/status_pb.js";
import { SpanKind, SpanStatus, TraceCollectorService } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import {
  ExportTraceServiceRequestSchema,
  ExportTraceServiceResponseSchema,
} from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { Span_SpanKind, Status_StatusCode } from "../../../gen/opentelemetry/proto/trace/v1/trace_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { callOptions as opts, nsOf, rpcError } from "../../fixtures/tracing.js";

const maxBodyBytes = 65_536;
const requestTimeoutMs = 5000;

const json = "application/json";
const protobuf = "application/x-protobuf";

/** What a POST to `/v1/traces` came back with. */
interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
}

/** The JSON a response body holds. */
function jsonOf(reply: Reply): unknown {
  return JSON.parse(reply.body.toString("utf8"));
}

const newTraceId = (): string => randomBytes(16).toString("hex");
const newSpanId = (): string => randomBytes(8).toString("hex");

/** An OTLP/JSON span (hex ids, ns times as strings, enums as integers as OTLP/JSON asks). */
function jsonSpan(traceId: string, spanId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    traceId,
    spanId,
    name: "GET /cart",
    kind: 2,
    startTimeUnixNano: "1700000000000000001",
    endTimeUnixNano: "1700000000005000002",
    status: {},
    ...overrides,
  };
}

/** An OTLP/JSON ExportTraceServiceRequest of `spans` from service `web`, scope `manual`. */
function jsonRequest(spans: readonly Record<string, unknown>[]): Record<string, unknown> {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: "web" } }] },
        scopeSpans: [{ scope: { name: "manual", version: "0.1.0" }, spans }],
      },
    ],
  };
}

/** A binary ExportTraceServiceRequest of one root span per trace id (8-byte span id 1, 1 ms long). */
function protobufRequest(traceIds: readonly Uint8Array[]): Uint8Array {
  return toBinary(
    ExportTraceServiceRequestSchema,
    create(ExportTraceServiceRequestSchema, {
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "billing" } } }] },
          scopeSpans: [
            {
              scope: { name: "manual" },
              spans: traceIds.map((traceId) => ({
                traceId,
                spanId: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 1]),
                name: "invoice",
                kind: Span_SpanKind.SERVER,
                startTimeUnixNano: 1_700_000_000_000_000_000n,
                endTimeUnixNano: 1_700_000_000_001_000_000n,
                status: { code: Status_StatusCode.OK },
              })),
            },
          ],
        },
      ],
    }),
  );
}

describe("OTLP/HTTP POST /v1/traces over the real port", () => {
  let server: TestControlPlane;
  let tracing: Client<typeof TraceCollectorService>;
  let url: string;

  beforeAll(async () => {
    server = await startTestControlPlane({ flags: { "max-message-bytes": String(maxBodyBytes) } });
    tracing = server.grpc(TraceCollectorService);
    url = `${server.httpBaseUrl}/v1/traces`;
  });
  afterAll(() => server.stop());

  async function send(init: { method?: string; headers?: Record<string, string>; body?: Uint8Array | string | ReadableStream<Uint8Array> }): Promise<Reply> {
    const request: RequestInit & { duplex?: "half" } = {
      method: init.method ?? "POST",
      headers: init.headers ?? {},
      signal: AbortSignal.timeout(requestTimeoutMs),
    };
    if (init.body !== undefined) request.body = init.body;
    if (init.body instanceof ReadableStream) request.duplex = "half";
    const res = await fetch(url, request);
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  }

  const post = (contentType: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<Reply> =>
    send({ headers: { "content-type": contentType, ...headers }, body });

  /** Expects a `google.rpc.Status` answer in JSON. */
  function expectJsonStatus(reply: Reply, httpStatus: number, code: Code): { code: number; message: string } {
    expect(reply.status, reply.body.toString("utf8")).toBe(httpStatus);
    expect(reply.headers.get("content-type")).toBe(json);
    const status = jsonOf(reply) as { code: number; message: string };
    expect(Object.keys(status).sort()).toEqual(["code", "message"]);
    expect(status.code).toBe(code);
    return status;
  }

  /** Expects a `google.rpc.Status` answer in binary protobuf. */
  function expectProtobufStatus(reply: Reply, httpStatus: number, code: Code): string {
    expect(reply.status).toBe(httpStatus);
    expect(reply.headers.get("content-type")).toBe(protobuf);
    const status = fromBinary(StatusSchema, reply.body);
    expect(status.code).toBe(code);
    return status.message;
  }

  describe("partial success", () => {
    it("answers OTLP/JSON with one valid and one invalid span 200 with rejectedSpans \"1\" naming the field", async () => {
      const traceId = newTraceId();
      const [root, bad] = [newSpanId(), newSpanId()];
      const reply = await post(
        json,
        JSON.stringify(
          jsonRequest([
            jsonSpan(traceId, root),
            jsonSpan(traceId, bad, {
              parentSpanId: root,
              startTimeUnixNano: "1700000000000000500",
              endTimeUnixNano: "1700000000000000499",
            }),
          ]),
        ),
      );
      expect(reply.status).toBe(200);
      expect(reply.headers.get("content-type")).toBe(json);
      expect(jsonOf(reply)).toEqual({
        partialSuccess: {
          rejectedSpans: "1",
          errorMessage:
            "resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano must not be before start_time_unix_nano, " +
            "got end 1700000000000000499 ns < start 1700000000000000500 ns",
        },
      });

      const stored = (await tracing.getTrace({ traceId }, opts)).trace?.spans ?? [];
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ spanId: root, serviceName: "web", operationName: "GET /cart", kind: SpanKind.SERVER, status: SpanStatus.OK });
      expect(stored[0]?.tags).toEqual({ "service.name": "web", "otel.scope.name": "manual", "otel.scope.version": "0.1.0" });
      expect([nsOf(stored[0]?.startTime), nsOf(stored[0]?.endTime)]).toEqual([1_700_000_000_000_000_001n, 1_700_000_000_005_000_002n]);
    });

    it("answers a fully accepted OTLP/JSON request 200 with an empty response", async () => {
      const traceId = newTraceId();
      const root = newSpanId();
      const child = newSpanId();
      const reply = await post(
        // Parameters and case of the media type do not matter.
        "Application/JSON; charset=utf-8",
        JSON.stringify(
          jsonRequest([
            jsonSpan(traceId, root),
            // Enum names are accepted as well as numbers.
            jsonSpan(traceId, child, {
              parentSpanId: root,
              startTimeUnixNano: "1700000000000000002",
              kind: "SPAN_KIND_CLIENT",
              status: { code: "STATUS_CODE_ERROR", message: "boom" },
            }),
          ]),
        ),
      );
      expect(reply.status).toBe(200);
      expect(jsonOf(reply)).toEqual({});
      const stored = (await tracing.getTrace({ traceId }, opts)).trace?.spans ?? [];
      expect(stored.map((s) => [s.spanId, s.parentSpanId, s.kind, s.status, s.tags["otel.status_description"]])).toEqual([
        [root, "", SpanKind.SERVER, SpanStatus.OK, undefined],
        [child, root, SpanKind.CLIENT, SpanStatus.ERROR, "boom"],
      ]);
    });

    it("answers binary protobuf partial success in protobuf, naming a wrong-length trace_id", async () => {
      const good = randomBytes(16);
      const reply = await post(protobuf, protobufRequest([good, Uint8Array.from([1, 2, 3])]));
      expect(reply.status).toBe(200);
      expect(reply.headers.get("content-type")).toBe(protobuf);
      const response = fromBinary(ExportTraceServiceResponseSchema, reply.body);
      expect(response.partialSuccess?.rejectedSpans).toBe(1n);
      expect(response.partialSuccess?.errorMessage).toBe("resource_spans[0].scope_spans[0].spans[1].trace_id must be 16 bytes, got 3");
      const stored = (await tracing.getTrace({ traceId: good.toString("hex") }, opts)).trace?.spans ?? [];
      expect(stored.map((s) => [s.spanId, s.serviceName])).toEqual([["0000000000000001", "billing"]]);
    });
  });

  describe("gzip", () => {
    it.each([
      ["binary protobuf", protobuf, (traceId: Buffer): Uint8Array => protobufRequest([traceId])],
      [
        "OTLP/JSON",
        json,
        (traceId: Buffer): Uint8Array => Buffer.from(JSON.stringify(jsonRequest([jsonSpan(traceId.toString("hex"), "0000000000000001")]))),
      ],
    ])("accepts a gzip-encoded %s body", async (_, contentType, body) => {
      const traceId = randomBytes(16);
      const reply = await post(contentType, gzipSync(body(traceId)), { "content-encoding": "gzip" });
      expect(reply.status, reply.body.toString("utf8")).toBe(200);
      expect(reply.headers.get("content-type")).toBe(contentType);
      const spans = (await tracing.getTrace({ traceId: traceId.toString("hex") }, opts)).trace?.spans ?? [];
      expect(spans.map((s) => s.spanId)).toEqual(["0000000000000001"]);
    });

    it("answers 400 for a body that claims gzip but is not", async () => {
      const reply = await post(protobuf, protobufRequest([randomBytes(16)]), { "content-encoding": "gzip" });
      expect(expectProtobufStatus(reply, 400, Code.InvalidArgument)).toBe("request body is not valid gzip");
    });

    it("answers 413 for a small gzip body that decompresses past the limit", async () => {
      const bomb = gzipSync(Buffer.alloc(maxBodyBytes * 4));
      expect(bomb.length).toBeLessThan(maxBodyBytes);
      const reply = await post(protobuf, bomb, { "content-encoding": "gzip" });
      expect(expectProtobufStatus(reply, 413, Code.InvalidArgument)).toBe(`request body must be at most ${maxBodyBytes} bytes decompressed`);
    });
  });

  describe("refusals with a google.rpc.Status body", () => {
    it("answers 415 for text/plain, in JSON", async () => {
      const status = expectJsonStatus(await post("text/plain", "hello"), 415, Code.InvalidArgument);
      expect(status.message).toBe("content-type must be application/x-protobuf or application/json, got text/plain");
    });

    it("answers 415 for a request without a content type", async () => {
      const status = expectJsonStatus(await send({ body: new Uint8Array([1]) }), 415, Code.InvalidArgument);
      expect(status.message).toBe("content-type must be application/x-protobuf or application/json, got none");
    });

    it("answers 415 for a content-encoding other than gzip, in the request's encoding", async () => {
      const reply = await post(protobuf, protobufRequest([randomBytes(16)]), { "content-encoding": "br" });
      expect(expectProtobufStatus(reply, 415, Code.InvalidArgument)).toBe("content-encoding must be gzip or identity, got br");
    });

    it("answers 405 with Allow: POST for GET", async () => {
      const reply = await send({ method: "GET" });
      expect(reply.headers.get("allow")).toBe("POST");
      expect(expectJsonStatus(reply, 405, Code.Unimplemented).message).toBe("method GET is not allowed; use POST");
    });

    it("answers 405 for PUT in the request's encoding", async () => {
      const reply = await send({ method: "PUT", headers: { "content-type": protobuf }, body: protobufRequest([randomBytes(16)]) });
      expect(reply.headers.get("allow")).toBe("POST");
      expect(expectProtobufStatus(reply, 405, Code.Unimplemented)).toBe("method PUT is not allowed; use POST");
    });

    it("answers 400 with a JSON Status for a body that is not JSON", async () => {
      const status = expectJsonStatus(await post(json, "{not json"), 400, Code.InvalidArgument);
      expect(status.message).toMatch(/^request body is not an ExportTraceServiceRequest: /);
    });

    it("answers 400 with a JSON Status for JSON of the wrong shape", async () => {
      const status = expectJsonStatus(await post(json, JSON.stringify({ resourceSpans: "nope" })), 400, Code.InvalidArgument);
      expect(status.message).toMatch(/^request body is not an ExportTraceServiceRequest: .*resource_spans from JSON: expected Array/);
    });

    it("answers 400 naming a span id that is not hex", async () => {
      const body = JSON.stringify(jsonRequest([jsonSpan(newTraceId(), "zz00000000000001")]));
      const status = expectJsonStatus(await post(json, body), 400, Code.InvalidArgument);
      expect(status.message).toBe(
        'request body is not an ExportTraceServiceRequest: resourceSpans[0].scopeSpans[0].spans[0].spanId must be a hex string, got "zz00000000000001"',
      );
    });

    it("answers 400 with a protobuf Status for an undecodable protobuf body", async () => {
      // Field 1 (resource_spans), wire type 2, with a length past the end.
      const message = expectProtobufStatus(await post(protobuf, Uint8Array.from([0x0a, 0x7f, 0x01])), 400, Code.InvalidArgument);
      expect(message).toMatch(/^request body is not an ExportTraceServiceRequest: /);
    });

    it("answers 413 for a body over --max-message-bytes with a declared length", async () => {
      const body = JSON.stringify(jsonRequest([jsonSpan(newTraceId(), newSpanId(), { name: "x".repeat(maxBodyBytes) })]));
      const status = expectJsonStatus(await post(json, body), 413, Code.InvalidArgument);
      expect(status.message).toBe(`request body must be at most ${maxBodyBytes} bytes`);
    });

    it("answers 413 for a chunked body that grows over --max-message-bytes", async () => {
      const chunk = new Uint8Array(16 * 1024).fill(0x20);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= maxBodyBytes * 2) {
            controller.close();
            return;
          }
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const reply = await send({ headers: { "content-type": json }, body });
      expect(expectJsonStatus(reply, 413, Code.InvalidArgument).message).toBe(`request body must be at most ${maxBodyBytes} bytes`);
    });

    it("accepts a body of exactly --max-message-bytes", async () => {
      const traceId = newTraceId();
      const text = JSON.stringify(jsonRequest([jsonSpan(traceId, "0000000000000001")]));
      const body = text + " ".repeat(maxBodyBytes - Buffer.byteLength(text));
      expect(Buffer.byteLength(body)).toBe(maxBodyBytes);
      const reply = await post(json, body);
      expect(reply.status, reply.body.toString("utf8")).toBe(200);
      expect((await tracing.getTrace({ traceId }, opts)).trace?.spans).toHaveLength(1);
    });
  });

  it("serves OTLP/HTTP over h2c too", async () => {
    const traceId = randomBytes(16);
    const session = connect(server.httpBaseUrl);
    try {
      const reply = await new Promise<{ status: number; contentType: string; body: Buffer }>((resolve, reject) => {
        const stream = session.request({
          [constants.HTTP2_HEADER_METHOD]: "POST",
          [constants.HTTP2_HEADER_PATH]: "/v1/traces",
          "content-type": protobuf,
        });
        stream.setTimeout(requestTimeoutMs, () => stream.close(constants.NGHTTP2_CANCEL));
        const chunks: Buffer[] = [];
        let status = 0;
        let contentType = "";
        stream.on("response", (headers) => {
          status = Number(headers[constants.HTTP2_HEADER_STATUS]);
          contentType = String(headers["content-type"]);
        });
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => resolve({ status, contentType, body: Buffer.concat(chunks) }));
        stream.on("error", reject);
        stream.on("close", () => reject(new Error(`h2 stream closed (rst code ${stream.rstCode ?? "none"})`)));
        stream.end(protobufRequest([traceId]));
      });
      expect(reply.status).toBe(200);
      expect(reply.contentType).toBe(protobuf);
      expect(fromBinary(ExportTraceServiceResponseSchema, reply.body).partialSuccess).toBeUndefined();
    } finally {
      session.close();
    }
    const spans = (await tracing.getTrace({ traceId: traceId.toString("hex") }, opts)).trace?.spans ?? [];
    expect(spans.map((s) => s.spanId)).toEqual(["0000000000000001"]);
  });

  it("stores nothing from a refused request", async () => {
    const traceId = newTraceId();
    const body = JSON.stringify(jsonRequest([jsonSpan(traceId, "0000000000000001")]));
    expect((await post("text/plain", body)).status).toBe(415);
    expect((await send({ method: "PUT", headers: { "content-type": json }, body })).status).toBe(405);
    expect((await post(json, body, { "content-encoding": "gzip" })).status).toBe(400);
    expect((await rpcError(tracing.getTrace({ traceId }, opts))).code).toBe(Code.NotFound);
  });
});
