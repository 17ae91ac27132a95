/**
 * OTLP ingestion end to end with the real OpenTelemetry Node SDK: spans made
 * by a `NodeTracerProvider` leave through each official exporter (OTLP/gRPC
 * on both ports, OTLP/HTTP protobuf plain and gzip, OTLP/HTTP JSON) and are
 * read back with `TraceCollectorService.GetTrace`; plus OTLP/gRPC partial
 * success through the generated `TraceService` client.
 *
 * Times are explicit `HrTime`s, so the nanoseconds the SDK holds can be
 * compared exactly with what the collector returns.
 */
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { credentials } from "@grpc/grpc-js";
import { SpanKind as OtelSpanKind, SpanStatusCode, trace as otelTrace, ROOT_CONTEXT, type HrTime } from "@opentelemetry/api";
import { OTLPTraceExporter as GrpcTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as JsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  InMemorySpanExporter,
  NodeTracerProvider,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-node";
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_FULL,
} from "@opentelemetry/semantic-conventions";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SpanKind, SpanStatus, TraceCollectorService, type Span } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import {
  ExportTraceServiceRequestSchema,
  TraceService,
  type ExportTraceServiceRequest,
} from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { Span_SpanKind, Status_StatusCode } from "../../../gen/opentelemetry/proto/trace/v1/trace_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { within } from "../../fixtures/streams.js";
import { callOptions as opts, nsOf } from "../../fixtures/tracing.js";

/** How long an exporter may take per request, and a flush or shutdown in all. */
const exportTimeoutMs = 5000;

type ExportResult = Parameters<Parameters<SpanExporter["export"]>[1]>[0];
type ProtoExporterConfig = NonNullable<ConstructorParameters<typeof ProtoTraceExporter>[0]>;
type GrpcExporterConfig = NonNullable<ConstructorParameters<typeof GrpcTraceExporter>[0]>;

/** An exporter that records every export's result, so a failed export fails the test. */
class RecordingExporter implements SpanExporter {
  readonly results: ExportResult[] = [];
  constructor(private readonly inner: SpanExporter) {}
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      this.results.push(result);
      done(result);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** Exports `spans` once through `exporter`, as a promise of its result. */
function exportOnce(exporter: SpanExporter, spans: ReadableSpan[]): Promise<ExportResult> {
  return within(new Promise<ExportResult>((resolve) => exporter.export(spans, resolve)), exportTimeoutMs * 2, "export");
}

/** Fails with the exporter's own error when a result is not a success. */
function expectSuccess(results: readonly ExportResult[]): void {
  expect(results.length, "the exporter was never called").toBeGreaterThan(0);
  for (const result of results) expect(result.error?.message ?? result.code, "export result").toBe(0);
}

/** Nanoseconds since the epoch of an SDK `HrTime`, exact. */
function nsOfHrTime([seconds, nanos]: HrTime): bigint {
  return BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
}

/** An SDK attribute value as the collector renders it into a tag. */
function tagValue(value: unknown): string {
  return Array.isArray(value) ? JSON.stringify(value) : String(value);
}

function tagsOf(attributes: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(attributes).map(([key, value]) => [key, tagValue(value)]));
}

/** One exporter under test and how to make it for a server. */
interface ExporterCase {
  readonly name: string;
  create(server: TestControlPlane): SpanExporter;
}

const gzip = "gzip" as ProtoExporterConfig["compression"];
const gzipGrpc = "gzip" as GrpcExporterConfig["compression"];

const exporterCases: readonly ExporterCase[] = [
  {
    name: "OTLP/gRPC on the gRPC port",
    create: (server) =>
      new GrpcTraceExporter({ url: `http://${server.grpcAddress}`, credentials: credentials.createInsecure(), timeoutMillis: exportTimeoutMs }),
  },
  {
    name: "OTLP/gRPC with gzip on the gRPC port",
    create: (server) =>
      new GrpcTraceExporter({
        url: `http://${server.grpcAddress}`,
        credentials: credentials.createInsecure(),
        compression: gzipGrpc,
        timeoutMillis: exportTimeoutMs,
      }),
  },
  {
    // The HTTP port also serves gRPC over h2c (prior knowledge).
    name: "OTLP/gRPC on the HTTP port",
    create: (server) =>
      new GrpcTraceExporter({ url: server.httpBaseUrl, credentials: credentials.createInsecure(), timeoutMillis: exportTimeoutMs }),
  },
  {
    name: "OTLP/gRPC with gzip on the HTTP port",
    create: (server) =>
      new GrpcTraceExporter({
        url: server.httpBaseUrl,
        credentials: credentials.createInsecure(),
        compression: gzipGrpc,
        timeoutMillis: exportTimeoutMs,
      }),
  },
  {
    name: "OTLP/HTTP protobuf",
    create: (server) => new ProtoTraceExporter({ url: `${server.httpBaseUrl}/v1/traces`, timeoutMillis: exportTimeoutMs }),
  },
  {
    name: "OTLP/HTTP protobuf with gzip",
    create: (server) =>
      new ProtoTraceExporter({ url: `${server.httpBaseUrl}/v1/traces`, compression: gzip, timeoutMillis: exportTimeoutMs }),
  },
  {
    name: "OTLP/HTTP JSON",
    create: (server) => new JsonTraceExporter({ url: `${server.httpBaseUrl}/v1/traces`, timeoutMillis: exportTimeoutMs }),
  },
];

/** The explicit times of the checkout trace: [seconds, nanoseconds]. */
const times = {
  parentStart: [1_700_000_000, 123_456_789],
  childStart: [1_700_000_000, 200_000_001],
  event: [1_700_000_000, 300_000_007],
  exception: [1_700_000_000, 749_999_999],
  childEnd: [1_700_000_000, 750_000_999],
  parentEnd: [1_700_000_000, 987_654_321],
} satisfies Record<string, HrTime>;

const scopeName = "checkout-handler";
const scopeVersion = "2.0.1";

const parentAttributes = {
  [ATTR_HTTP_REQUEST_METHOD]: "POST",
  [ATTR_HTTP_ROUTE]: "/cart/checkout",
  [ATTR_HTTP_RESPONSE_STATUS_CODE]: 502,
  "checkout.items": ["sku-1", "sku-2"],
};
const childAttributes = {
  [ATTR_HTTP_REQUEST_METHOD]: "POST",
  [ATTR_URL_FULL]: "http://payments.internal/charge",
  [ATTR_HTTP_RESPONSE_STATUS_CODE]: 503,
  "payment.amount": 12.5,
  "payment.retried": true,
};

/**
 * Emits the checkout trace: a SERVER span `POST /cart/checkout` (status
 * unset) with a CLIENT child `POST payments` that records an event and an
 * exception and ends with ERROR.
 */
function emitCheckoutTrace(provider: NodeTracerProvider): { traceId: string; parentId: string; childId: string } {
  const tracer = provider.getTracer(scopeName, scopeVersion);
  const parent = tracer.startSpan("POST /cart/checkout", {
    kind: OtelSpanKind.SERVER,
    startTime: times.parentStart,
    attributes: parentAttributes,
  });
  const child = tracer.startSpan(
    "POST payments",
    { kind: OtelSpanKind.CLIENT, startTime: times.childStart, attributes: childAttributes },
    otelTrace.setSpan(ROOT_CONTEXT, parent),
  );
  child.addEvent("payment.retry", { "retry.attempt": 2, "retry.reason": "gateway timeout" }, times.event);
  const failure = new Error("payment gateway returned 503");
  failure.name = "GatewayError";
  child.recordException(failure, times.exception);
  child.setStatus({ code: SpanStatusCode.ERROR, message: "payment gateway returned 503" });
  child.end(times.childEnd);
  parent.end(times.parentEnd);
  return { traceId: parent.spanContext().traceId, parentId: parent.spanContext().spanId, childId: child.spanContext().spanId };
}

describe("OTLP ingestion with the OpenTelemetry Node SDK", () => {
  let server: TestControlPlane;
  let tracing: Client<typeof TraceCollectorService>;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    server = await startTestControlPlane();
    tracing = server.grpc(TraceCollectorService);
  });
  afterEach(async () => {
    const pending = cleanups.splice(0).map((cleanup) => cleanup());
    await within(Promise.all(pending), exportTimeoutMs * 2, "provider and exporter shutdown");
  });
  afterAll(() => server.stop());

  /** A provider with resource `service.name=checkout`, sending to `exporter` and to memory. */
  function checkoutProvider(exporter: SpanExporter | undefined): { provider: NodeTracerProvider; memory: InMemorySpanExporter } {
    const memory = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAME]: "checkout",
        [ATTR_SERVICE_VERSION]: "1.4.2",
        "deployment.environment.name": "integration",
      }),
      spanProcessors: [
        new SimpleSpanProcessor(memory),
        ...(exporter === undefined ? [] : [new BatchSpanProcessor(exporter, { exportTimeoutMillis: exportTimeoutMs })]),
      ],
    });
    cleanups.push(() => provider.shutdown());
    return { provider, memory };
  }

  async function getTrace(traceId: string): Promise<Span[]> {
    const res = await tracing.getTrace({ traceId }, opts);
    expect(res.trace?.traceId).toBe(traceId);
    return res.trace?.spans ?? [];
  }

  describe.each(exporterCases)("through the $name exporter", (exporterCase) => {
    it("round-trips a SERVER span and its failing CLIENT child to GetTrace exactly", async () => {
      const exporter = new RecordingExporter(exporterCase.create(server));
      const { provider, memory } = checkoutProvider(exporter);
      const ids = emitCheckoutTrace(provider);
      await within(provider.forceFlush(), exportTimeoutMs * 2, "forceFlush");
      expectSuccess(exporter.results);

      const finished = memory.getFinishedSpans();
      const sdkParent = finished.find((s) => s.spanContext().spanId === ids.parentId)!;
      const sdkChild = finished.find((s) => s.spanContext().spanId === ids.childId)!;
      expect(ids.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect([ids.parentId, ids.childId]).toEqual([expect.stringMatching(/^[0-9a-f]{16}$/), expect.stringMatching(/^[0-9a-f]{16}$/)]);
      // The explicit times reach the SDK's ReadableSpan untouched.
      expect([sdkParent.startTime, sdkParent.endTime, sdkChild.startTime, sdkChild.endTime]).toEqual([
        times.parentStart,
        times.parentEnd,
        times.childStart,
        times.childEnd,
      ]);

      const res = await tracing.getTrace({ traceId: ids.traceId }, opts);
      const tree = res.trace!;
      expect(tree.traceId).toBe(ids.traceId);
      expect(tree.spans.map((s) => s.spanId)).toEqual([ids.parentId, ids.childId]);
      expect(tree.rootSpan?.spanId).toBe(ids.parentId);
      expect(tree).toMatchObject({ serviceCount: 1, errorCount: 1, totalDurationMs: 864n, orphanSpanIds: [] });
      const [parent, child] = tree.spans as [Span, Span];

      // Every resource attribute the SDK sent, including its telemetry.sdk.* defaults.
      const resourceTags = tagsOf(sdkParent.resource.attributes);
      expect(resourceTags).toMatchObject({ "service.name": "checkout", "service.version": "1.4.2", "deployment.environment.name": "integration" });
      const scopeTags = { "otel.scope.name": scopeName, "otel.scope.version": scopeVersion };

      expect(parent).toMatchObject({
        traceId: ids.traceId,
        spanId: ids.parentId,
        parentSpanId: "",
        serviceName: "checkout",
        operationName: "POST /cart/checkout",
        kind: SpanKind.SERVER,
        status: SpanStatus.OK,
        logs: [],
        // 987654321 − 123456789 ns = 864.197532 ms
        durationMs: 864n,
      });
      expect(parent.tags).toEqual({
        ...resourceTags,
        ...scopeTags,
        "http.request.method": "POST",
        "http.route": "/cart/checkout",
        "http.response.status_code": "502",
        "checkout.items": '["sku-1","sku-2"]',
      });
      expect([nsOf(parent.startTime), nsOf(parent.endTime)]).toEqual([nsOfHrTime(sdkParent.startTime), nsOfHrTime(sdkParent.endTime)]);
      expect(nsOf(parent.startTime)).toBe(1_700_000_000_123_456_789n);

      expect(child).toMatchObject({
        traceId: ids.traceId,
        spanId: ids.childId,
        parentSpanId: ids.parentId,
        serviceName: "checkout",
        operationName: "POST payments",
        kind: SpanKind.CLIENT,
        status: SpanStatus.ERROR,
        // 750000999 − 200000001 ns = 550.000998 ms
        durationMs: 550n,
      });
      expect(child.tags).toEqual({
        ...resourceTags,
        ...scopeTags,
        "http.request.method": "POST",
        "url.full": "http://payments.internal/charge",
        "http.response.status_code": "503",
        "payment.amount": "12.5",
        "payment.retried": "true",
        "otel.status_description": "payment gateway returned 503",
      });
      expect([nsOf(child.startTime), nsOf(child.endTime)]).toEqual([nsOfHrTime(sdkChild.startTime), nsOfHrTime(sdkChild.endTime)]);
      expect(nsOf(child.endTime)).toBe(1_700_000_000_750_000_999n);

      expect(child.logs.map((log) => ({ timeNs: nsOf(log.time), fields: log.fields }))).toEqual([
        {
          timeNs: nsOfHrTime(times.event),
          fields: { event: "payment.retry", "retry.attempt": "2", "retry.reason": "gateway timeout" },
        },
        {
          timeNs: nsOfHrTime(times.exception),
          fields: {
            event: "exception",
            "exception.type": "GatewayError",
            "exception.message": "payment gateway returned 503",
            "exception.stacktrace": expect.stringContaining("GatewayError: payment gateway returned 503") as unknown,
          },
        },
      ]);
      expect(sdkChild.events.map((e) => nsOfHrTime(e.time))).toEqual(child.logs.map((log) => nsOf(log.time)));
    });

    it("keeps one copy of spans exported twice, as an exporter retry sends them", async () => {
      const exporter = exporterCase.create(server);
      cleanups.push(() => exporter.shutdown());
      const { provider, memory } = checkoutProvider(undefined);
      const ids = emitCheckoutTrace(provider);
      const finished = memory.getFinishedSpans();
      expect(finished).toHaveLength(2);

      expectSuccess([await exportOnce(exporter, finished)]);
      expectSuccess([await exportOnce(exporter, finished)]);
      // Also a retry of one span on its own.
      expectSuccess([await exportOnce(exporter, finished.slice(0, 1))]);

      const spans = await getTrace(ids.traceId);
      expect(spans.map((s) => s.spanId)).toEqual([ids.parentId, ids.childId]);
    });
  });

  it("ingests many spans from several services and scopes in one flushed batch", async () => {
    const exporter = new RecordingExporter(
      new ProtoTraceExporter({ url: `${server.httpBaseUrl}/v1/traces`, timeoutMillis: exportTimeoutMs }),
    );
    const providers = ["frontend", "inventory"].map((service) => {
      const provider = new NodeTracerProvider({
        resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: service }),
        spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 1000, maxQueueSize: 2000 })],
      });
      cleanups.push(() => provider.shutdown());
      return provider;
    });
    const [frontend, inventory] = providers as [NodeTracerProvider, NodeTracerProvider];
    const root = frontend.getTracer("http").startSpan("GET /", { kind: OtelSpanKind.SERVER, startTime: [1_700_000_100, 0] });
    const context = otelTrace.setSpan(ROOT_CONTEXT, root);
    const children = Array.from({ length: 120 }, (_, i) => {
      const tracer = inventory.getTracer(i % 2 === 0 ? "db" : "cache");
      const span = tracer.startSpan(`lookup ${i}`, { kind: OtelSpanKind.INTERNAL, startTime: [1_700_000_100, 1_000 + i] }, context);
      span.end([1_700_000_100, 2_000_000 + i]);
      return span.spanContext().spanId;
    });
    root.end([1_700_000_101, 0]);
    await within(Promise.all(providers.map((p) => p.forceFlush())), exportTimeoutMs * 2, "forceFlush");
    expectSuccess(exporter.results);

    const spans = await getTrace(root.spanContext().traceId);
    expect(spans).toHaveLength(121);
    expect(spans[0]).toMatchObject({ spanId: root.spanContext().spanId, serviceName: "frontend", kind: SpanKind.SERVER, durationMs: 1000n });
    const rest = spans.slice(1);
    expect(rest.map((s) => s.spanId)).toEqual(children);
    expect(new Set(rest.map((s) => s.serviceName))).toEqual(new Set(["inventory"]));
    expect(rest.map((s) => s.tags["otel.scope.name"])).toEqual(children.map((_, i) => (i % 2 === 0 ? "db" : "cache")));
    expect(new Set(rest.map((s) => s.kind))).toEqual(new Set([SpanKind.INTERNAL]));
  });
});

describe("OTLP/gRPC partial success through the generated TraceService client", () => {
  let server: TestControlPlane;
  let otlp: Client<typeof TraceService>;
  let tracing: Client<typeof TraceCollectorService>;

  beforeAll(async () => {
    server = await startTestControlPlane({ flags: { "max-spans-per-trace": "1" } });
    otlp = server.grpc(TraceService);
    tracing = server.grpc(TraceCollectorService);
  });
  afterAll(() => server.stop());

  const traceIdBytes = (): Uint8Array => new Uint8Array(randomBytes(16));
  const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

  /** An export request of `spans` from service `cart`, all in scope `cart-scope`. */
  function request(spans: { traceId: Uint8Array; spanId: number; parent?: number; start?: bigint; end?: bigint }[]): ExportTraceServiceRequest {
    const idOf = (n: number): Uint8Array => Uint8Array.from([0, 0, 0, 0, 0, 0, 0, n]);
    return create(ExportTraceServiceRequestSchema, {
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "cart" } } }] },
          scopeSpans: [
            {
              scope: { name: "cart-scope" },
              spans: spans.map((s) => ({
                traceId: s.traceId,
                spanId: idOf(s.spanId),
                parentSpanId: s.parent === undefined ? new Uint8Array() : idOf(s.parent),
                name: `op-${s.spanId}`,
                kind: Span_SpanKind.SERVER,
                startTimeUnixNano: s.start ?? 1_700_000_000_000_000_000n,
                endTimeUnixNano: s.end ?? 1_700_000_000_001_000_000n,
                status: { code: Status_StatusCode.OK },
              })),
            },
          ],
        },
      ],
    });
  }

  it("answers a full success with partial_success unset", async () => {
    const traceId = traceIdBytes();
    const res = await otlp.export(request([{ traceId, spanId: 1 }]), opts);
    expect(res.partialSuccess).toBeUndefined();
    expect((await tracing.getTrace({ traceId: hex(traceId) }, opts)).trace?.spans.map((s) => s.spanId)).toEqual(["0000000000000001"]);
  });

  it("counts a span of a full trace as rejected, naming the trace and the limit", async () => {
    const traceId = traceIdBytes();
    const id = hex(traceId);
    const first = await otlp.export(request([{ traceId, spanId: 1 }, { traceId, spanId: 2, parent: 1 }]), opts);
    expect(first.partialSuccess?.rejectedSpans).toBe(1n);
    expect(first.partialSuccess?.errorMessage).toBe(`trace ${id} is full: it holds the maximum of 1 spans`);

    // A later export to the full trace is rejected too; a retry of the stored span is not.
    const later = await otlp.export(request([{ traceId, spanId: 1 }, { traceId, spanId: 3, parent: 1 }]), opts);
    expect(later.partialSuccess?.rejectedSpans).toBe(1n);
    expect(later.partialSuccess?.errorMessage).toContain(`trace ${id} is full`);

    expect((await tracing.getTrace({ traceId: id }, opts)).trace?.spans.map((s) => s.spanId)).toEqual(["0000000000000001"]);
  });

  it("rejects an invalid span alone, naming its field, and counts it with dropped ones", async () => {
    const valid = traceIdBytes();
    const full = traceIdBytes();
    await otlp.export(request([{ traceId: full, spanId: 1 }]), opts);
    const res = await otlp.export(
      request([
        { traceId: valid, spanId: 1 },
        { traceId: valid, spanId: 2, parent: 1, start: 1_700_000_000_000_000_500n, end: 1_700_000_000_000_000_499n },
        { traceId: full, spanId: 2, parent: 1 },
      ]),
      opts,
    );
    expect(res.partialSuccess?.rejectedSpans).toBe(2n);
    expect(res.partialSuccess?.errorMessage).toBe(
      "resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano must not be before start_time_unix_nano, " +
        "got end 1700000000000000499 ns < start 1700000000000000500 ns; " +
        `trace ${hex(full)} is full: it holds the maximum of 1 spans`,
    );
    const stored = (await tracing.getTrace({ traceId: hex(valid) }, opts)).trace?.spans ?? [];
    expect(stored.map((s) => [s.spanId, s.serviceName, s.tags["otel.scope.name"]])).toEqual([["0000000000000001", "cart", "cart-scope"]]);
  });
});
