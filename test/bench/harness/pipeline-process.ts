/**
 * The pipeline process (forked by the pipeline runner, never imported): opens
 * a `PipelineScenario` on the parent's temp directory and keeps
 * `concurrency` of its operations in flight — each completion immediately
 * starts the next (closed loop) — timing each with `process.hrtime.bigint()`.
 * Its own CPU time and GC pauses in the window are the pipeline's cost: no
 * RPC and no load client share the process.
 *
 * Protocol: the load client's (see `pipeline-protocol.ts`).
 */
import { PerformanceObserver } from "node:perf_hooks";
import { runChild, sendToParent } from "./ipc.js";
import { MeasuredWindow } from "./measured-window.js";
import type { PipelineJob, PipelineMessage } from "./pipeline-protocol.js";
import { loadPipelineScenario } from "./pipeline-scenario.js";

/** How long the operations in flight at `stop` may take to finish before the process answers anyway. */
const drainTimeoutMs = 10_000;
/** The parent bounds every run; this only ends a process the parent forgot. */
const parentTimeoutMs = 3_600_000;

runChild(async () => {
  const job = JSON.parse(process.argv[2] ?? "") as PipelineJob;
  let gcMs = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  }).observe({ entryTypes: ["gc"] });
  const scenario = await loadPipelineScenario(job.scenario);
  const pipeline = await scenario.open({ dir: job.dir, durability: job.durability });

  const window = new MeasuredWindow();
  let gcAtStart = 0;
  let gcInWindow = 0;
  let rssBytes = 0;
  const measured = window.run({
    drainTimeoutMs,
    parentTimeoutMs,
    onMeasure: () => (gcAtStart = gcMs),
    onStop: () => {
      gcInWindow = gcMs - gcAtStart;
      rssBytes = process.memoryUsage.rss();
    },
  });
  let sequence = 0;
  const start = (): void => {
    const startedAt = window.begin();
    pipeline.run(sequence++).then(
      () => finish(startedAt, undefined),
      (error: unknown) => finish(startedAt, error instanceof Error ? error.message : String(error)),
    );
  };
  const finish = (startedAt: bigint, error: string | undefined): void => {
    window.end(startedAt, error);
    if (!window.stopping) start();
  };
  for (let i = 0; i < job.concurrency; i++) start();
  await sendToParent({ type: "started" } satisfies PipelineMessage);
  const result = await measured;
  pipeline.close();
  await sendToParent({ ...result, gcMs: gcInWindow, rssBytes } satisfies PipelineMessage);
  process.exit(0);
});
