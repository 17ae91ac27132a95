import { fromBinary } from "@bufbuild/protobuf";
import { ExportTraceServiceRequestSchema } from "../../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { exportSpans } from "../../../server/rpc/otlp-trace.js";
import type { PipelineScenario } from "../harness/pipeline-scenario.js";
import { BatchTemplate } from "./tracing-batches.js";
import { openPipelineStore } from "./tracing-pipeline-store.js";

/**
 * OTLP Export's raw pipeline, the ceiling of the `otlp-export` target: the
 * bytes load client 0 sends, decoded with protobuf-es and handed to
 * `exportSpans` (the mapping and `exportMapped` both OTLP transports run:
 * map, validate, `TracingStore.ingestBatch`, answer), on one thread, with
 * no RPC.
 */
const otlpPipeline: PipelineScenario = {
  open({ dir, durability }) {
    const { store, close } = openPipelineStore(dir, durability);
    const template = BatchTemplate.otlp(0);
    return {
      async run(sequence) {
        const response = await exportSpans(fromBinary(ExportTraceServiceRequestSchema, template.at(sequence)), { store, now: Date.now });
        if (response.partialSuccess !== undefined) throw new Error(`export rejected spans: ${response.partialSuccess.errorMessage}`);
      },
      close,
    };
  },
};

export default otlpPipeline;

/** URL of this module, for bench targets that use it. */
export const otlpPipelineScenario = import.meta.url;
