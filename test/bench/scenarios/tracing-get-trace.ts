import { create } from "@bufbuild/protobuf";
import { GetTraceRequestSchema, TraceCollectorService } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { analysisTraceId } from "./tracing-batches.js";

const request = create(GetTraceRequestSchema, { traceId: analysisTraceId });

/** `GetTrace` of the 500-span analysis trace the bench ingested before the load (see `analysisTraceRequest`). */
const getTrace: LoadScenario = {
  service: TraceCollectorService,
  method: "getTrace",
  request: () => request,
};

export default getTrace;

/** URL of this module, for bench targets that use it. */
export const getTraceScenario = import.meta.url;
