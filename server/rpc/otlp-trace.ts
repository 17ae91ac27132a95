import { create } from "@bufbuild/protobuf";
import {
  ExportTraceServiceResponseSchema,
  TraceService,
  type ExportTraceServiceRequest,
  type ExportTraceServiceResponse,
} from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import type { TracingStore } from "../store/tracing-store.js";
import type { IngestSpan } from "../store/tracing-codec.js";
import { offloadable } from "./offloaded-decoding.js";
import { otlpExportSpec } from "./offload-specs.js";
import { spansFromExportRequest, summarizeRejections, type OtlpMappingResult } from "./otlp-mapping.js";
import { registerService, type ServiceRegistration } from "./service-registration.js";

/** What OTLP trace ingestion needs, on either transport. */
export interface OtlpTraceOptions {
  /** Where accepted spans go. */
  readonly store: Pick<TracingStore, "ingestBatch">;
  /** The collector's clock (epoch ms); a new trace is first seen then. */
  readonly now: () => number;
}

/**
 * Ingests an OTLP export request and answers it: `spansFromExportRequest`
 * (step 1), then {@link exportMapped} (steps 2 and 3), the two halves that
 * `TraceService/Export` and OTLP/HTTP `POST /v1/traces` run, the first in
 * a decode worker for large requests.
 *
 * 1. Maps and validates every span (see `spansFromExportRequest`); invalid
 *    spans are rejected one by one.
 * 2. Ingests the valid ones in one `ingestBatch`, so they commit together.
 *    Duplicates count as accepted: an exporter's retry is idempotent.
 *    Spans of full or expired traces are dropped, i.e. rejected.
 * 3. Answers `partial_success` with the rejected count (invalid + dropped)
 *    and the first reasons, and leaves it unset when every span was
 *    accepted, as OTLP asks. An empty request is a full success.
 *
 * @throws whatever the store throws (the transport maps it)
 */
export function exportSpans(request: ExportTraceServiceRequest, options: OtlpTraceOptions): Promise<ExportTraceServiceResponse> {
  return exportMapped(spansFromExportRequest(request), options);
}

/**
 * {@link exportSpans} from step 2 on, for a request already mapped and
 * validated (by a decode worker, or by `exportSpans`).
 */
export async function exportMapped(mapped: OtlpMappingResult<IngestSpan>, options: OtlpTraceOptions): Promise<ExportTraceServiceResponse> {
  const messages = mapped.errorMessage === undefined ? [] : [mapped.errorMessage];
  let dropped = 0;
  if (mapped.spans.length > 0) {
    const { counts, decisions } = await options.store.ingestBatch(mapped.spans, options.now());
    dropped = counts.dropped;
    if (dropped > 0) {
      const reasons = new Set<string>();
      for (const decision of decisions) if (decision.outcome === "dropped") reasons.add(decision.message);
      messages.push(summarizeRejections([...reasons], dropped));
    }
  }
  const rejected = mapped.rejected + dropped;
  if (rejected === 0) return create(ExportTraceServiceResponseSchema);
  return create(ExportTraceServiceResponseSchema, {
    partialSuccess: { rejectedSpans: BigInt(rejected), errorMessage: messages.join("; ") },
  });
}

/**
 * `opentelemetry.proto.collector.trace.v1.TraceService`, OTLP/gRPC trace
 * ingestion: {@link exportSpans} per call, its mapping offloadable to a
 * decode worker. A store failure is thrown for the edge to map.
 */
export function createOtlpTraceService(options: OtlpTraceOptions): ServiceRegistration {
  return registerService(TraceService, {
    export: offloadable(otlpExportSpec, (mapped) => exportMapped(mapped, options)),
  });
}
