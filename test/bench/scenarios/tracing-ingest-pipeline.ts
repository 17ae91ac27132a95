import { fromBinary } from "@bufbuild/protobuf";
import { IngestBatchRequestSchema } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { validateSpanInput } from "../../../server/core/tracing/validation.js";
import { spanInput } from "../../../server/rpc/tracing-mapping.js";
import type { PipelineScenario } from "../harness/pipeline-scenario.js";
import { BatchTemplate } from "./tracing-batches.js";
import { openPipelineStore } from "./tracing-pipeline-store.js";

/**
 * IngestBatch's raw pipeline, the ceiling of the `ingest-batch` target: the
 * bytes load client 0 sends, decoded with protobuf-es, mapped and validated
 * as the IngestBatch handler does (`spanInput`, `validateSpanInput`) and
 * stored by `TracingStore.ingestBatch`, with no RPC. Operation `n` is load
 * client 0's request `n`.
 */
const ingestPipeline: PipelineScenario = {
  open({ dir, durability }) {
    const { store, close } = openPipelineStore(dir, durability);
    const template = BatchTemplate.native(0);
    return {
      async run(sequence) {
        const request = fromBinary(IngestBatchRequestSchema, template.at(sequence));
        const spans = request.spans.map((message, i) => validateSpanInput(spanInput(message, `spans[${i}]`), `spans[${i}]`));
        const { counts } = await store.ingestBatch(spans, Date.now());
        if (counts.ingested !== spans.length) throw new Error(`batch ${sequence}: ${JSON.stringify(counts)} of ${spans.length} spans`);
      },
      close,
    };
  },
};

export default ingestPipeline;

/** URL of this module, for bench targets that use it. */
export const ingestPipelineScenario = import.meta.url;
