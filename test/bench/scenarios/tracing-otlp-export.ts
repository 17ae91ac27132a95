import { TraceService, type ExportTraceServiceResponse } from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { BatchTemplate } from "./tracing-batches.js";

let template: BatchTemplate | undefined;

/**
 * OTLP `TraceService/Export` of 1,000 spans per call: the same traces as
 * `tracing-ingest-batch.ts` as an OpenTelemetry SDK exports them (a resource
 * with `service.name` and the SDK's attributes per service, an
 * instrumentation scope, typed span attributes, exception events), sent as
 * bytes rewritten from one template per load client.
 */
const otlpExport: LoadScenario = {
  service: TraceService,
  method: "export",
  request: (sequence, client) => (template ??= BatchTemplate.otlp(client)).at(sequence),
  // A generator bug (rejected or dropped spans) would measure something else: fail loudly.
  consume: (response) => {
    const { partialSuccess } = response as ExportTraceServiceResponse;
    if (partialSuccess !== undefined) throw new Error(`Export rejected ${partialSuccess.rejectedSpans} spans: ${partialSuccess.errorMessage}`);
  },
};

export default otlpExport;

/** URL of this module, for bench targets that use it. */
export const otlpExportScenario = import.meta.url;
