import { TraceCollectorService, type IngestBatchResponse } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { BatchTemplate, batchSpans } from "./tracing-batches.js";

let template: BatchTemplate | undefined;

/**
 * `TraceCollectorService.IngestBatch` of 1,000 realistic spans per call
 * (~80 traces of 5–20 spans, each crossing two batches; see
 * `tracing-batches.ts`), sent as bytes rewritten from one template per load
 * client: unique trace ids per (client, call), times moving forward.
 */
const ingestBatch: LoadScenario = {
  service: TraceCollectorService,
  method: "ingestBatch",
  request: (sequence, client) => (template ??= BatchTemplate.native(client)).at(sequence),
  // A generator bug (duplicate or dropped spans) would measure something else: fail loudly.
  consume: (response) => {
    const { ingested, dropped, duplicates } = response as IngestBatchResponse;
    if (ingested !== batchSpans) throw new Error(`IngestBatch stored ${ingested} of ${batchSpans} spans (${dropped} dropped, ${duplicates} duplicates)`);
  },
};

export default ingestBatch;

/** URL of this module, for bench targets that use it. */
export const ingestBatchScenario = import.meta.url;
