import { TraceCollectorService } from "../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { TraceService } from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { encodeSpan } from "../store/tracing-codec.js";
import { decodeAndPrepare, offloadSpec, type OffloadSpec, type RequestDecoder } from "./offloaded-decoding.js";
import { spansFromExportRequest } from "./otlp-mapping.js";
import { spansOfBatch } from "./tracing-mapping.js";

/**
 * TraceCollector `IngestBatch`: the batch's spans, validated, with their
 * tags and logs encoded for their rows (the store's `EncodedSpan`), so the
 * event loop neither builds that JSON nor deserializes the objects.
 */
export const ingestBatchSpec = offloadSpec(TraceCollectorService.method.ingestBatch, (request) =>
  spansOfBatch(request).map(encodeSpan),
);

/** OTLP `TraceService/Export` (and OTLP/HTTP protobuf bodies): the valid spans, encoded as above, and the rejections. */
export const otlpExportSpec = offloadSpec(TraceService.method.export, (request) => {
  const mapped = spansFromExportRequest(request);
  return { ...mapped, spans: mapped.spans.map(encodeSpan) };
});

/**
 * Every request a decode worker can prepare, by method path. The workers
 * import this module, so a spec must be listed here to be offloaded; its
 * imports must stay pure (no store, no server state).
 */
export const offloadSpecs: ReadonlyMap<string, OffloadSpec> = new Map(
  [ingestBatchSpec, otlpExportSpec].map((spec) => [spec.path, spec as unknown as OffloadSpec]),
);

/**
 * Decodes and prepares on the calling thread: the gRPC port's decoder
 * without decode workers, and the pool's for small requests. Its answers
 * are the workers' answers.
 */
export const inlineDecoder: RequestDecoder = {
  decode(path, bytes) {
    const spec = offloadSpecs.get(path);
    try {
      if (spec === undefined) throw new Error(`no offload spec for ${path}`);
      return Promise.resolve(decodeAndPrepare(spec, bytes));
    } catch (thrown) {
      return Promise.reject(thrown);
    }
  },
};
