import { MirrorService, type CaptureStreamResponse } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import type { LoadScenario } from "../harness/scenario.js";
import { CaptureTemplates, mirrorsPerService } from "./mirror-captures.js";

/** Captures per stream when the module URL does not say (`?captures=n`). */
export const defaultStreamCaptures = 2_000;

/** Captures per stream: the `captures` parameter of this module's URL (see {@link captureStreamScenario}). */
const capturesPerStream = Number(new URL(import.meta.url).searchParams.get("captures") ?? defaultStreamCaptures);

let templates: CaptureTemplates | undefined;

/**
 * `MirrorService.CaptureStream`, a proxy's open stream: each call writes
 * `capturesPerStream` captures (the unary target's checkout calls, as
 * `CaptureStreamRequest` bytes) and half-closes; the server answers once
 * every capture of the stream is durable, with per-mirror counts.
 */
const captureStream: LoadScenario = {
  service: MirrorService,
  method: "captureStream",
  messagesPerCall: capturesPerStream,
  request: (sequence, client) => (templates ??= new CaptureTemplates(client, true)).at(sequence),
  // Every capture must have queued into three mirrors: a drop measures something else.
  consume: (response) => {
    const { captures, mirrors } = response as CaptureStreamResponse;
    const queued = mirrors.reduce((sum, m) => sum + m.queued, 0);
    const dropped = mirrors.reduce((sum, m) => sum + m.dropped, 0);
    if (captures !== capturesPerStream || queued !== captures * mirrorsPerService || dropped > 0) {
      throw new Error(`CaptureStream of ${capturesPerStream}: ${captures} captures, ${queued} queued, ${dropped} dropped`);
    }
  },
};

export default captureStream;

/** URL of this module with `captures` captures per stream, for bench targets. */
export function captureStreamScenario(captures: number): string {
  const url = new URL(import.meta.url);
  url.search = `?captures=${captures}`;
  return url.href;
}
