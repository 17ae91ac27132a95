import { MirrorService, type CaptureResponse } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { CaptureTemplates, mirrorsPerService } from "./mirror-captures.js";

let templates: CaptureTemplates | undefined;

/**
 * `MirrorService.Capture` of one checkout call per request (a ~500-byte JSON
 * body, seven headers, two of them redacted), sent as bytes rewritten from
 * the load client's templates (see `mirror-captures.ts`); each capture
 * queues into three FULL mirrors and is answered once durable.
 */
const capture: LoadScenario = {
  service: MirrorService,
  method: "capture",
  request: (sequence, client) => (templates ??= new CaptureTemplates(client, false)).at(sequence),
  // A capture that did not reach three mirrors measures something else: fail loudly.
  consume: (response) => {
    const { mirrors } = response as CaptureResponse;
    if (mirrors.length !== mirrorsPerService || mirrors.some((m) => m.queued !== 1)) {
      throw new Error(`Capture queued into ${mirrors.filter((m) => m.queued === 1).length} of ${mirrorsPerService} mirrors (${mirrors.length} applied)`);
    }
  },
};

export default capture;

/** URL of this module, for bench targets that use it. */
export const captureScenario = import.meta.url;
