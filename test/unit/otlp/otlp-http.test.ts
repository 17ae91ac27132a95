import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { StatusSchema } from "../../../gen/google/rpc/status_pb.js";
import {
  ExportTraceServiceRequestSchema,
  ExportTraceServiceResponseSchema,
  TraceService,
} from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { Span_SpanKind, Status_StatusCode, type Span as OtlpSpan, type SpanSchema } from "../../../gen/opentelemetry/proto/trace/v1/trace_pb.js";
import { defaultCollectorLimits } from "../../../server/core/tracing/model.js";
import type { Logger } from "../../../server/observability/logger.js";
import { inlineDecoder } from "../../../server/rpc/offload-specs.js";
import { exportSpans, createOtlpTraceService, type OtlpTraceOptions } from "../../../server/rpc/otlp-trace.js";
import { closeDatabase, openDatabase, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";
import { migrations } from "../../../server/store/migrations.js";
import { TracingStore } from "../../../server/store/tracing-store.js";
import type { HttpRoute } from "../../../server/transport/http-server.js";
import { createOtlpHttpRoutes, otlpTracesPath } from "../../../server/transport/otlp-http.js";

const nowMs = 1_700_000_000_000;
const startNs = 1_700_000_000_000_000_000n;
const traceHex = "4bf92f3577b34da6a3ce929d0e0e4736";
const maxSpansPerTrace = 3;
const maxBodyBytes = 64 * 1024;

/** A span init object (never a built message, so it can be spread). */
type SpanInit = Exclude<MessageInitShape<typeof SpanSchema>, OtlpSpan>;

function spanHex(n: number): string {
  return n.toString(16).padStart(16, "0");
}

/** A valid OTLP span of {@link traceHex} with span id `n`. */
function otlpSpan(n: number, overrides: SpanInit = {}): SpanInit {
  return {
    traceId: Buffer.from(traceHex, "hex"),
    spanId: Buffer.from(spanHex(n), "hex"),
    name: `op-${n}`,
    kind: Span_SpanKind.SERVER,
    startTimeUnixNano: startNs,
    endTimeUnixNano: startNs + 1_000_000n,
    status: { code: Status_StatusCode.OK },
    ...overrides,
  };
}

function exportRequest(...spans: SpanInit[]) {
  return create(ExportTraceServiceRequestSchema, {
    resourceSpans: [
      { resource: { attributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "cart" } } }] }, scopeSpans: [{ spans }] },
    ],
  });
}

let db: SqliteDatabase;
let committer: GroupCommitter;
let store: TracingStore;

beforeEach(() => {
  db = openDatabase({ path: ":memory:", durability: "full", migrations });
  committer = new GroupCommitter(db);
  store = new TracingStore(db, committer, { limits: defaultCollectorLimits({ maxSpansPerTrace }) });
});

afterEach(() => {
  committer.close();
  closeDatabase(db);
});

function traceOptions(): OtlpTraceOptions {
  return { store, now: () => nowMs };
}

const failingStore: OtlpTraceOptions["store"] = {
  ingestBatch: () => Promise.reject(new Error("disk I/O error")),
};

describe("exportSpans (shared by gRPC Export and OTLP/HTTP)", () => {
  it("ingests every span and leaves partial_success unset when all are accepted", async () => {
    const response = await exportSpans(exportRequest(otlpSpan(1), otlpSpan(2)), traceOptions());
    expect(response.partialSuccess).toBeUndefined();
    expect(store.traceSpans(traceHex).map((s) => s.spanId)).toEqual([spanHex(1), spanHex(2)]);
    expect(store.traceRecord(traceHex)?.firstSeenMs).toBe(nowMs);
  });

  it("answers an empty request without touching the store", async () => {
    const response = await exportSpans(create(ExportTraceServiceRequestSchema), { store: failingStore, now: () => nowMs });
    expect(response.partialSuccess).toBeUndefined();
  });

  it("accepts duplicates: a retried export is a full success", async () => {
    const request = exportRequest(otlpSpan(1), otlpSpan(2));
    await exportSpans(request, traceOptions());
    const retried = await exportSpans(request, traceOptions());
    expect(retried.partialSuccess).toBeUndefined();
    expect(store.traceRecord(traceHex)?.spanCount).toBe(2);
  });

  it("counts invalid and dropped spans as rejected, with their reasons", async () => {
    const request = exportRequest(otlpSpan(1), otlpSpan(2, { name: "" }), otlpSpan(3), otlpSpan(4), otlpSpan(5), otlpSpan(6));
    const response = await exportSpans(request, traceOptions());
    // 1 invalid; 5 valid of which 3 fit the trace and 2 are dropped as trace_full.
    expect(response.partialSuccess?.rejectedSpans).toBe(3n);
    expect(response.partialSuccess?.errorMessage).toMatch(
      /^resource_spans\[0\]\.scope_spans\[0\]\.spans\[1\] is missing required fields: name; trace 4bf92f3577b34da6a3ce929d0e0e4736 .*full.* \(and 1 more rejected spans\)$/,
    );
    expect(store.traceRecord(traceHex)?.spanCount).toBe(maxSpansPerTrace);
  });

  it("rejects every span of a request whose spans are all invalid", async () => {
    const response = await exportSpans(exportRequest(otlpSpan(1, { traceId: new Uint8Array(3) })), traceOptions());
    expect(response.partialSuccess?.rejectedSpans).toBe(1n);
    expect(response.partialSuccess?.errorMessage).toContain("trace_id must be 16 bytes, got 3");
  });

  it("throws what the store throws", async () => {
    await expect(exportSpans(exportRequest(otlpSpan(1)), { store: failingStore, now: () => nowMs })).rejects.toThrow("disk I/O error");
  });

  it("serves TraceService/Export", async () => {
    const transport = createRouterTransport((router) => {
      const { service, impl } = createOtlpTraceService(traceOptions());
      router.service(service, impl);
    });
    const client = createClient(TraceService, transport);
    expect((await client.export(exportRequest(otlpSpan(1)))).partialSuccess).toBeUndefined();
    const partial = await client.export(exportRequest(otlpSpan(2, { endTimeUnixNano: 1n })));
    expect(partial.partialSuccess?.rejectedSpans).toBe(1n);
    expect(store.traceRecord(traceHex)?.spanCount).toBe(1);
  });

  it("fails TraceService/Export when the store fails", async () => {
    const transport = createRouterTransport((router) => {
      const { service, impl } = createOtlpTraceService({ store: failingStore, now: () => nowMs });
      router.service(service, impl);
    });
    await expect(createClient(TraceService, transport).export(exportRequest(otlpSpan(1)))).rejects.toBeInstanceOf(ConnectError);
  });
});

describe("OTLP/HTTP POST /v1/traces", () => {
  let server: http.Server;
  let url: string;
  let logger: Logger;

  async function serve(options: Partial<OtlpTraceOptions> = {}): Promise<void> {
    logger = pino({ level: "silent" });
    const route = createOtlpHttpRoutes({ ...traceOptions(), ...options, maxBodyBytes, logger, decoder: inlineDecoder }).get(otlpTracesPath)!;
    server = http.createServer((req, res) => void route(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${otlpTracesPath}`;
  }

  beforeEach(() => serve());
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function post(body: Uint8Array | string, headers: Record<string, string>): Promise<Response> {
    return fetch(url, { method: "POST", body, headers, signal: AbortSignal.timeout(5000) });
  }

  function postProtobuf(body: Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
    return post(body, { "content-type": "application/x-protobuf", ...headers });
  }

  function postJson(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return post(typeof body === "string" ? body : JSON.stringify(body), { "content-type": "application/json", ...headers });
  }

  async function statusOf(response: Response): Promise<{ code: number; message: string }> {
    if (response.headers.get("content-type") === "application/x-protobuf") {
      const status = fromBinary(StatusSchema, new Uint8Array(await response.arrayBuffer()));
      return { code: status.code, message: status.message };
    }
    return (await response.json()) as { code: number; message: string };
  }

  /** An OTLP/JSON span as SDKs send it: hex ids, numeric enums, int64 as strings. */
  function jsonSpan(n: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      traceId: traceHex.toUpperCase(),
      spanId: spanHex(n),
      name: `op-${n}`,
      kind: 3,
      startTimeUnixNano: String(startNs),
      endTimeUnixNano: String(startNs + 2_000_000n),
      status: { code: 2, message: "boom" },
      attributes: [{ key: "http.status_code", value: { intValue: "503" } }],
      ...extra,
    };
  }

  function jsonRequest(...spans: Record<string, unknown>[]) {
    return {
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { stringValue: "web" } }] },
          scopeSpans: [{ scope: { name: "manual" }, spans }],
        },
      ],
    };
  }

  it("ingests binary protobuf and answers in binary protobuf", async () => {
    const response = await postProtobuf(toBinary(ExportTraceServiceRequestSchema, exportRequest(otlpSpan(1))));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-protobuf");
    const body = fromBinary(ExportTraceServiceResponseSchema, new Uint8Array(await response.arrayBuffer()));
    expect(body.partialSuccess).toBeUndefined();
    expect(store.getSpan(traceHex, spanHex(1))?.serviceName).toBe("cart");
  });

  it("ingests OTLP/JSON: hex ids, numeric enums, unknown fields ignored", async () => {
    const request = jsonRequest(
      jsonSpan(1, { parentSpanId: "", futureField: { x: 1 }, links: [{ traceId: traceHex, spanId: spanHex(9) }] }),
      jsonSpan(2, { parentSpanId: spanHex(1), kind: "SPAN_KIND_PRODUCER" }),
    );
    const response = await postJson(request, { "content-type": "application/json; charset=utf-8" });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(await response.json()).toEqual({});
    const [root, child] = store.traceSpans(traceHex);
    expect(root).toMatchObject({
      spanId: spanHex(1),
      serviceName: "web",
      operationName: "op-1",
      kind: "client",
      status: "error",
      endTimeNs: startNs + 2_000_000n,
      tags: { "http.status_code": "503", "otel.scope.name": "manual", "otel.status_description": "boom" },
    });
    expect(root).not.toHaveProperty("parentSpanId");
    expect(child).toMatchObject({ spanId: spanHex(2), parentSpanId: spanHex(1), kind: "producer" });
  });

  it("keeps nanosecond times sent as bare JSON numbers exact (JSON.parse alone would round them)", async () => {
    const start = 1_700_000_000_123_456_789n;
    const end = start + 987_654_321n;
    expect(BigInt(Number(start))).not.toBe(start); // a double cannot hold it
    const text = JSON.stringify(
      jsonRequest(
        jsonSpan(1, {
          startTimeUnixNano: "START",
          endTimeUnixNano: "END",
          events: [{ timeUnixNano: "EVENT", name: "retry" }],
          attributes: [{ key: "note", value: { stringValue: '{"timeUnixNano": 5}' } }],
        }),
      ),
    )
      .replace('"START"', String(start))
      .replace('"END"', ` ${end} `)
      .replace('"EVENT"', String(start + 1n));
    const response = await postJson(text);
    expect(response.status).toBe(200);
    const [span] = store.traceSpans(traceHex);
    expect(span).toMatchObject({ startTimeNs: start, endTimeNs: end, tags: { note: '{"timeUnixNano": 5}' } });
    expect(span!.logs[0]!.timeNs).toBe(start + 1n);
  });

  it("answers a partial success in JSON", async () => {
    const response = await postJson(jsonRequest(jsonSpan(1), jsonSpan(2, { spanId: "0102" })));
    expect(response.status).toBe(200);
    const body = (await response.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } };
    expect(body.partialSuccess.rejectedSpans).toBe("1");
    expect(body.partialSuccess.errorMessage).toContain("spans[1].span_id must be 8 bytes, got 2");
  });

  it("decompresses a gzip body", async () => {
    const body = gzipSync(toBinary(ExportTraceServiceRequestSchema, exportRequest(otlpSpan(1))));
    const response = await postProtobuf(body, { "content-encoding": "gzip" });
    expect(response.status).toBe(200);
    expect(store.getSpan(traceHex, spanHex(1))).toBeDefined();
  });

  it("answers another method with 405 and Allow: POST", async () => {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    expect(await statusOf(response)).toEqual({ code: 12, message: "method GET is not allowed; use POST" });
  });

  it.each<[string, Record<string, string>, string]>([
    ["another content type", { "content-type": "text/plain" }, "content-type must be application/x-protobuf or application/json, got text/plain"],
    ["another content encoding", { "content-type": "application/json", "content-encoding": "br" }, "content-encoding must be gzip or identity, got br"],
  ])("answers %s with 415", async (_name, headers, message) => {
    const response = await post("{}", headers);
    expect(response.status).toBe(415);
    expect(await statusOf(response)).toEqual({ code: 3, message });
  });

  it("answers a body over maxBodyBytes with 413 before reading it", async () => {
    const response = await postProtobuf(new Uint8Array(maxBodyBytes + 1));
    expect(response.status).toBe(413);
    expect(await statusOf(response)).toEqual({ code: 3, message: `request body must be at most ${maxBodyBytes} bytes` });
  });

  it("answers a chunked body growing over maxBodyBytes with 413", async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(url, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on("error", reject);
      for (let i = 0; i < 4; i++) req.write("x".repeat(maxBodyBytes / 2));
      req.end();
    });
    expect(status).toBe(413);
    expect(JSON.parse(body)).toMatchObject({ code: 3 });
  });

  it("answers a gzip body decompressing over maxBodyBytes with 413", async () => {
    const response = await postProtobuf(gzipSync(new Uint8Array(maxBodyBytes * 16)), { "content-encoding": "gzip" });
    expect(response.status).toBe(413);
    expect((await statusOf(response)).message).toBe(`request body must be at most ${maxBodyBytes} bytes decompressed`);
  });

  it.each<[string, () => Promise<Response>, "application/x-protobuf" | "application/json", RegExp]>([
    ["a body that is not gzip", () => postProtobuf(new Uint8Array([1, 2, 3]), { "content-encoding": "gzip" }), "application/x-protobuf", /^request body is not valid gzip$/],
    ["an undecodable protobuf body", () => postProtobuf(new Uint8Array([0x0a, 0xff])), "application/x-protobuf", /^request body is not an ExportTraceServiceRequest: /],
    ["a body that is not JSON", () => postJson("{resourceSpans"), "application/json", /^request body is not an ExportTraceServiceRequest: /],
    ["JSON of the wrong shape", () => postJson({ resourceSpans: "many" }), "application/json", /^request body is not an ExportTraceServiceRequest: /],
    [
      "a non-hex JSON id",
      () => postJson(jsonRequest(jsonSpan(1, { traceId: "zz" }))),
      "application/json",
      /resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId must be a hex string, got "zz"$/,
    ],
    [
      "a non-hex JSON link id",
      () => postJson(jsonRequest(jsonSpan(1, { links: [{ traceId: traceHex, spanId: "abc" }] }))),
      "application/json",
      /spans\[0\]\.links\[0\]\.spanId must be a hex string, got "abc"$/,
    ],
  ])("answers %s with 400 and a google.rpc.Status in the request's encoding", async (_name, send, encoding, message) => {
    const response = await send();
    expect(response.status).toBe(400);
    expect(response.headers.get("content-type")).toBe(encoding);
    const status = await statusOf(response);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(message);
  });

  it("answers 503 when the store fails, logging the cause and not leaking it", async () => {
    server.closeAllConnections();
    server.close();
    await serve({ store: failingStore });
    const logged = vi.spyOn(logger, "error");
    const response = await postProtobuf(toBinary(ExportTraceServiceRequestSchema, exportRequest(otlpSpan(1))));
    expect(response.status).toBe(503);
    expect(await statusOf(response)).toEqual({ code: 14, message: "trace ingestion is unavailable; retry later" });
    expect(logged).toHaveBeenCalledWith(expect.objectContaining({ err: expect.objectContaining({ message: "disk I/O error" }) }), "otlp/http export failed");
  });

  it("serves HTTP/2 requests too", async () => {
    const route: HttpRoute = createOtlpHttpRoutes({ ...traceOptions(), maxBodyBytes, logger, decoder: inlineDecoder }).get(otlpTracesPath)!;
    const h2 = http2.createServer((req, res) => void route(req, res));
    await new Promise<void>((resolve) => h2.listen(0, "127.0.0.1", resolve));
    const session = http2.connect(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`);
    try {
      const { status, body } = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": otlpTracesPath, "content-type": "application/x-protobuf" });
        const chunks: Buffer[] = [];
        let status = 0;
        stream.on("response", (headers) => (status = Number(headers[":status"])));
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => resolve({ status, body: Buffer.concat(chunks) }));
        stream.on("error", reject);
        stream.end(toBinary(ExportTraceServiceRequestSchema, exportRequest(otlpSpan(1))));
      });
      expect(status).toBe(200);
      expect(fromBinary(ExportTraceServiceResponseSchema, body).partialSuccess).toBeUndefined();
      expect(store.getSpan(traceHex, spanHex(1))).toBeDefined();
    } finally {
      session.close();
      await new Promise((resolve) => h2.close(resolve));
    }
  });
});
