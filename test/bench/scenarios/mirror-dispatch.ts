import { create } from "@bufbuild/protobuf";
import { DispatchRequestSchema, MirrorService, type DispatchResponse } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { mirrorIdOf, mirrorsPerService } from "./mirror-captures.js";

/** Requests each Dispatch call sends at most. */
export const dispatchBatchSize = 1_000;
/** The source service of the dispatch target's mirrors. */
export const dispatchService = "checkout";

const requests = Array.from({ length: mirrorsPerService }, (_, index) =>
  create(DispatchRequestSchema, { mirrorId: mirrorIdOf(dispatchService, index), batchSize: dispatchBatchSize }),
);

/**
 * `MirrorService.Dispatch` of up to 1,000 buffered captures per call to a
 * local HTTP shadow, the calls taking the dispatch target's mirrors in turn
 * (the server runs one dispatch per mirror at a time). What counts is the
 * shadow requests that succeeded, from each answer's results, not calls: a
 * buffer running short answers fewer.
 */
const dispatch: LoadScenario = {
  service: MirrorService,
  method: "dispatch",
  request: (sequence) => requests[sequence % requests.length]!,
  units: (response) => (response as DispatchResponse).results.reduce((sum, result) => sum + (result.success ? 1 : 0), 0),
};

export default dispatch;

/** URL of this module, for bench targets that use it. */
export const dispatchScenario = import.meta.url;
