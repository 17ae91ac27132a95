import { MirrorService } from "../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { TraceCollectorService } from "../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { TraceService } from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { encodeSpan } from "../store/tracing-codec.js";
import { decodeAndPrepare, offloadSpec, type AnyOffloadSpec, type RequestDecoder } from "./offloaded-decoding.js";
import { decodeAndPrepareChunk, streamOffloadSpec } from "./offloaded-streams.js";
import { captureStreamMessage } from "./mirror-mapping.js";
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

/** Mirror `CaptureStream`: each message's capture, validated (see `captureStreamMessage`). */
export const captureStreamSpec = streamOffloadSpec(MirrorService.method.captureStream, captureStreamMessage);

/**
 * Every request a decode worker can prepare, by method path. The workers
 * import this module, so a spec must be listed here to be offloaded; its
 * imports must stay pure (no store, no server state).
 */
export const offloadSpecs: ReadonlyMap<string, AnyOffloadSpec> = new Map(
  [ingestBatchSpec, otlpExportSpec, captureStreamSpec].map((spec) => [spec.path, spec as unknown as AnyOffloadSpec]),
);

/** The spec at `path` of the given kind; throws a bug's Error for any other (a registration mistake). */
export function offloadSpecAt<K extends AnyOffloadSpec["kind"]>(path: string, kind: K): Extract<AnyOffloadSpec, { kind: K }> {
  const spec = offloadSpecs.get(path);
  if (spec?.kind !== kind) throw new Error(`no ${kind} offload spec for ${path}`);
  return spec as Extract<AnyOffloadSpec, { kind: K }>;
}

/**
 * Decodes and prepares on the calling thread: the gRPC port's decoder
 * without decode workers, and the pool's for small requests. Its answers
 * are the workers' answers.
 */
export const inlineDecoder: RequestDecoder = {
  decode: (path, bytes) => settled(() => decodeAndPrepare(offloadSpecAt(path, "unary"), bytes)),
  decodeChunk: (path, messages, firstIndex, context) =>
    settled(() => decodeAndPrepareChunk(offloadSpecAt(path, "stream"), messages, firstIndex, context)),
};

/** What `run` returns, or throws, as a promise. */
function settled<T>(run: () => T): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (thrown) {
    return Promise.reject(thrown);
  }
}
