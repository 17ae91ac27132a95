import type { Client } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TraceCollectorService } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { callOptions as opts, newTraceId, spanMessage } from "../../fixtures/tracing.js";

/** A trace of `count` spans: a root and its children, labelled `s0…`. */
function traceOf(trace: string, count: number) {
  return Array.from({ length: count }, (_, i) =>
    spanMessage({ trace, id: `s${i}`, ...(i > 0 ? { parent: "s0" } : {}), start: i, end: count + 1, tags: { n: String(i) } }),
  );
}

/** Spans in GetTrace's answer for `trace`; 0 while it is unknown (NOT_FOUND). */
async function spansNow(tracing: Client<typeof TraceCollectorService>, trace: string): Promise<number> {
  try {
    return (await tracing.getTrace({ traceId: trace }, opts)).trace?.spans.length ?? -1;
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.NotFound) return 0;
    throw error;
  }
}

describe.each(["grpc", "connect"] as const)("a large IngestBatch over %s, written in steps", (transport) => {
  let server: TestControlPlane;
  let tracing: Client<typeof TraceCollectorService>;
  beforeAll(async () => {
    server = await startTestControlPlane();
    tracing = transport === "grpc" ? server.grpc(TraceCollectorService) : server.http(TraceCollectorService);
  });
  afterAll(() => server.stop());

  it("is never seen half-written, while other traces keep being answered", async () => {
    const settledTrace = newTraceId();
    await tracing.ingestBatch({ spans: traceOf(settledTrace, 3) }, opts);
    // 4 traces of 500 spans: 2,000 spans, 8 steps or more.
    const batchTraces = [newTraceId(), newTraceId(), newTraceId(), newTraceId()];
    let done = false;
    const ingest = tracing.ingestBatch({ spans: batchTraces.flatMap((trace) => traceOf(trace, 500)) }, opts).finally(() => {
      done = true;
    });
    const seen: number[] = [];
    while (!done) {
      const [settledSpans, ...batchSpans] = await Promise.all([spansNow(tracing, settledTrace), ...batchTraces.map((t) => spansNow(tracing, t))]);
      expect(settledSpans).toBe(3);
      seen.push(...batchSpans);
    }
    expect(await ingest).toMatchObject({ ingested: 2000, dropped: 0, duplicates: 0 });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((count) => count !== 0 && count !== 500)).toEqual([]);
    for (const trace of batchTraces) expect(await spansNow(tracing, trace)).toBe(500);
  });
});
