import { create } from "@bufbuild/protobuf";
import { CriticalPathRequestSchema, TraceCollectorService } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { analysisTraceId } from "./tracing-batches.js";

const request = create(CriticalPathRequestSchema, { traceId: analysisTraceId });

/** `CriticalPath` of the 500-span analysis trace the bench ingested before the load (see `analysisTraceRequest`). */
const criticalPath: LoadScenario = {
  service: TraceCollectorService,
  method: "criticalPath",
  request: () => request,
};

export default criticalPath;

/** URL of this module, for bench targets that use it. */
export const criticalPathScenario = import.meta.url;
