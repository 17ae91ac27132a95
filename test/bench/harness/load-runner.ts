import { setTimeout as sleep } from "node:timers/promises";
import { nextMessage } from "./ipc.js";
import { mergeSorted, nearestRank } from "./latency.js";
import type { LoadClientResult, LoadJob, LoadMessage } from "./load-protocol.js";
import { forkChild, reapChild } from "./processes.js";

const loadClientModule = new URL("./load-client.js", import.meta.url);

/** How long a load client may take to connect and start. */
const startTimeoutMs = 15_000;
/** How long a load client may take to drain and answer after `stop` (it drains for at most 5 s). */
const resultTimeoutMs = 15_000;

/** The shape of the load, the same for every target of a bench. */
export interface LoadSettings {
  /** Seconds of load before the measured window. */
  readonly warmupSeconds: number;
  /** Seconds of the measured window. */
  readonly durationSeconds: number;
  /** Calls in flight in total, spread over the clients. */
  readonly concurrency: number;
  /** Load client processes, each with its own connection. */
  readonly clients: number;
  /**
   * Load clients keep responses as bytes instead of decoding them (and skip
   * the scenario's `consume`): on a machine where clients and server share
   * the cores, this shows what the server can do rather than what decoding
   * a large response costs the client.
   */
  readonly rawResponses: boolean;
  /**
   * Calls per second over all clients, open loop (`concurrency` then caps
   * the calls in flight; see `LoadJob.ratePerSecond`), e.g. a latency probe
   * that should not itself load the server. Absent: closed loop.
   */
  readonly ratePerSecond?: number;
}

/** What the load clients measured, merged. */
export interface LoadResult {
  /** Calls completed OK in the window, all clients. */
  readonly ops: number;
  /** Sum over the clients of their ops / their window. */
  readonly opsPerSecond: number;
  /** CPU time of every load client in its window, in microseconds. */
  readonly clientCpuMicros: number;
  /**
   * Sum over the clients of their units / their window, when the scenario
   * counts units from its answers (`LoadScenario.units`); absent otherwise.
   */
  readonly unitsPerSecond?: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
}

/** A load result with the server samples taken just before and just after the window. */
export interface LoadRun<Sample> {
  readonly result: LoadResult;
  readonly before: Sample;
  readonly after: Sample;
  /** What the background client measured in the same window, when there was one. */
  readonly background?: LoadResult;
}

/**
 * Paced load of another scenario from one more load client process, running
 * beside the measured load from its start to its end (e.g. ingestion while
 * a read latency is measured). Its figures are kept apart.
 */
export interface BackgroundLoad {
  /** URL of the compiled scenario module. */
  readonly scenario: string;
  /** Calls per second, open loop. */
  readonly ratePerSecond: number;
  /** Most calls in flight. */
  readonly concurrency: number;
}

/** What {@link runLoad} needs. */
export interface LoadRunOptions<Sample> {
  /** `127.0.0.1:port` of the server under test. */
  readonly address: string;
  /** URL of the compiled scenario module. */
  readonly scenario: string;
  readonly settings: LoadSettings;
  /** Samples the server (e.g. its CPU time); called right before and right after the window. */
  readonly sample: () => Promise<Sample>;
  /** Load beside the measured one; its client is numbered after the measured clients. */
  readonly background?: BackgroundLoad;
}

/**
 * Runs one measurement: forks the load clients, lets them warm up, samples
 * the server, measures for the fixed duration, samples again, and merges the
 * clients' results (latency percentiles over all calls of all clients,
 * nearest rank). Fails if any call failed: a bench of errors measures nothing.
 * The clients are gone when it settles.
 */
export async function runLoad<Sample>(options: LoadRunOptions<Sample>): Promise<LoadRun<Sample>> {
  const { settings, background } = options;
  const jobs: LoadJob[] = spread(settings.concurrency, settings.clients).map((concurrency, client) => ({
    address: options.address,
    scenario: options.scenario,
    concurrency,
    client,
    rawResponses: settings.rawResponses,
    ...(settings.ratePerSecond !== undefined ? { ratePerSecond: settings.ratePerSecond / settings.clients } : {}),
  }));
  if (background !== undefined) {
    jobs.push({ address: options.address, client: settings.clients, rawResponses: settings.rawResponses, ...background });
  }
  const children = jobs.map((job) => forkChild(loadClientModule, [JSON.stringify(job)]));
  try {
    await Promise.all(
      children.map((child, client) => nextMessage<LoadMessage, "started">(child, "started", startTimeoutMs, `load client ${client} start`)),
    );
    await sleep(settings.warmupSeconds * 1000);
    const before = await options.sample();
    for (const child of children) child.send({ type: "measure" } satisfies LoadMessage);
    await sleep(settings.durationSeconds * 1000);
    const answers = children.map((child, client) =>
      nextMessage<LoadMessage, "result">(child, "result", resultTimeoutMs, `load client ${client} result`),
    );
    for (const child of children) child.send({ type: "stop" } satisfies LoadMessage);
    const after = await options.sample();
    const results = await Promise.all(answers);
    const failed = results.find((r) => r.errors > 0);
    if (failed !== undefined) throw new Error(`${failed.errors} calls failed, first: ${failed.firstError ?? "?"}`);
    const result = merge(results.slice(0, settings.clients));
    return { result, before, after, ...(background !== undefined ? { background: merge(results.slice(settings.clients)) } : {}) };
  } finally {
    await Promise.all(children.map((child) => reapChild(child, 2_000)));
  }
}

/** The results of several load clients as one: latency percentiles over all their calls. */
function merge(results: readonly LoadClientResult[]): LoadResult {
  const latencies = mergeSorted(results.map((r) => r.latenciesNs));
  const counted = results.some((r) => r.units !== undefined);
  return {
    ops: latencies.length,
    opsPerSecond: results.reduce((sum, r) => sum + r.ops / r.seconds, 0),
    clientCpuMicros: results.reduce((sum, r) => sum + r.cpuMicros, 0),
    ...(counted ? { unitsPerSecond: results.reduce((sum, r) => sum + (r.units ?? 0) / r.seconds, 0) } : {}),
    p50Ms: nearestRank(latencies, 50) / 1e6,
    p90Ms: nearestRank(latencies, 90) / 1e6,
    p99Ms: nearestRank(latencies, 99) / 1e6,
  };
}

/** Splits `total` (calls in flight, streams) over `clients` as evenly as possible. */
export function spread(total: number, clients: number): number[] {
  return Array.from({ length: clients }, (_, i) => Math.floor(total / clients) + (i < total % clients ? 1 : 0));
}
