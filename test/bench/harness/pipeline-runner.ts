import { setTimeout as sleep } from "node:timers/promises";
import type { Durability } from "../../../server/store/database.js";
import { createHostDir, hostV8Flags } from "./hosts.js";
import { nextMessage } from "./ipc.js";
import { mergeSorted, nearestRank } from "./latency.js";
import type { PipelineJob, PipelineMessage } from "./pipeline-protocol.js";
import { forkChild, reapChild } from "./processes.js";

const pipelineModule = new URL("./pipeline-process.js", import.meta.url);

/** How long a pipeline may take to open and start. */
const startTimeoutMs = 20_000;
/** How long it may take to drain and answer after `stop` (it drains for at most 10 s). */
const resultTimeoutMs = 20_000;

/** What {@link runPipeline} needs. */
export interface PipelineRunOptions {
  /** URL of the compiled pipeline module (see `PipelineScenario`). */
  readonly scenario: string;
  /** Operations in flight. */
  readonly concurrency: number;
  readonly durability: Durability;
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
  /** Node flags besides the hosts' V8 flags (e.g. `--cpu-prof`). */
  readonly execArgv: readonly string[];
}

/** What a pipeline process measured in its window. */
export interface PipelineRunResult {
  readonly ops: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** The process's CPU time in the window per operation, in microseconds. */
  readonly cpuMicrosPerOp: number;
  /** Its GC pause time in the window per operation, in microseconds. */
  readonly gcMicrosPerOp: number;
  readonly rssBytes: number;
}

/**
 * Measures a raw pipeline the way a target is measured: forks the pipeline
 * process (with the hosts' V8 flags, so its heap behaves like a host's) on a
 * fresh temp directory, lets it warm up, measures for the fixed duration,
 * and takes its figures. Fails if any operation failed. The process and its
 * directory are gone when it settles.
 */
export async function runPipeline(options: PipelineRunOptions): Promise<PipelineRunResult> {
  const dir = createHostDir("pipeline");
  const job: PipelineJob = { scenario: options.scenario, concurrency: options.concurrency, dir: dir.path, durability: options.durability };
  const child = forkChild(pipelineModule, [JSON.stringify(job)], [...hostV8Flags, ...options.execArgv]);
  try {
    await nextMessage<PipelineMessage, "started">(child, "started", startTimeoutMs, "pipeline start");
    await sleep(options.warmupSeconds * 1000);
    child.send({ type: "measure" } satisfies PipelineMessage);
    await sleep(options.durationSeconds * 1000);
    const answer = nextMessage<PipelineMessage, "result">(child, "result", resultTimeoutMs, "pipeline result");
    child.send({ type: "stop" } satisfies PipelineMessage);
    const result = await answer;
    if (result.errors > 0) throw new Error(`${result.errors} pipeline operations failed, first: ${result.firstError ?? "?"}`);
    const latencies = mergeSorted([result.latenciesNs]);
    return {
      ops: result.ops,
      opsPerSecond: result.ops / result.seconds,
      p50Ms: nearestRank(latencies, 50) / 1e6,
      p90Ms: nearestRank(latencies, 90) / 1e6,
      p99Ms: nearestRank(latencies, 99) / 1e6,
      cpuMicrosPerOp: result.cpuMicros / result.ops,
      gcMicrosPerOp: (result.gcMs * 1000) / result.ops,
      rssBytes: result.rssBytes,
    };
  } finally {
    await reapChild(child, 10_000);
    dir.remove();
  }
}
