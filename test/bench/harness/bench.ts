import type { Durability } from "../../../server/store/database.js";
import { healthCheckScenario } from "../scenarios/health-check.js";
import type { HostSpec, HostStats } from "./host-protocol.js";
import { startHost, type Host } from "./hosts.js";
import { runLoad, type BackgroundLoad, type LoadResult, type LoadSettings } from "./load-runner.js";
import { runPipeline } from "./pipeline-runner.js";
import { summarize, type BenchGoal, type BenchSummary, type Check, type Measurement, type SummaryRow } from "./report.js";
import { runWatch, type FanOutWriter, type WatchSettings } from "./watch-runner.js";

/** Everything a bench run is told by the command line. */
export interface BenchOptions extends LoadSettings {
  /** Measurements per target; the report shows medians. */
  readonly runs: number;
  /** Durability of control-plane hosts. */
  readonly durability: Durability;
  /** Node flags of every host process (e.g. `--cpu-prof`). */
  readonly hostExecArgv: readonly string[];
  /** Receives one line per measurement, as it completes. */
  readonly progress: (line: string) => void;
  /** The etcd executable peer targets run; undefined when there is none (they are skipped). */
  readonly etcd: string | undefined;
  /** Shape of watch fan-out targets. */
  readonly watch: WatchSettings;
  /** Watch streams of etcd targets (`--etcd-watchers`), when fewer than `watch.streams`. */
  readonly etcdWatchers: number;
  /** The workloads to run of a bench that has several (see `Bench.workloads`); undefined = all. */
  readonly workloads: readonly string[] | undefined;
  /** Shape of the tracing bench's load. */
  readonly tracing: TracingSettings;
  /** Shape of the mirror bench's streams. */
  readonly mirror: MirrorSettings;
}

/** The tracing bench's load (its own flags: a 1,000-span call is not a health check). */
export interface TracingSettings {
  /** Load client processes of the ingest targets. */
  readonly ingestClients: number;
  /** Batches in flight over those clients, and in the raw pipelines. */
  readonly ingestInFlight: number;
  /** Spans per second of IngestBatch beside the analysis targets; 0 for none. */
  readonly backgroundSpansPerSecond: number;
  /** Calls per second of each analysis probe (GetTrace, CriticalPath). */
  readonly analysisPerSecond: number;
}

/** The mirror bench's CaptureStream load and Capture probe (its own flags: a stream of captures is not a unary call). */
export interface MirrorSettings {
  /** Captures per CaptureStream call. */
  readonly streamCaptures: number;
  /** CaptureStream calls in flight, over as many load clients as {@link streamClients}. */
  readonly streamsInFlight: number;
  /** Load client processes of the CaptureStream target. */
  readonly streamClients: number;
  /** The paced Capture target's rate, as a share of the same run's ceiling ops/s. */
  readonly capturePace: number;
}

/**
 * What one operation carries when that is what counts, e.g. 1,000 spans per
 * IngestBatch: the row gets a `<name>/s` column (ops/s × `perOp`).
 */
export interface OpUnit {
  /** Plural noun, e.g. `spans`. */
  readonly name: string;
  readonly perOp: number;
}

/** What every row has: a label and where it goes. */
interface RowBase {
  readonly label: string;
  /** Rows of one section share a table in the report. */
  readonly section?: string;
  /** Label of another target of the bench this one is compared with, e.g. etcd's. */
  readonly peer?: string;
}

/** What a target's `prepare` leaves for after its measurement. */
export interface Prepared {
  /**
   * Runs after the measured window, before the host stops (also when the
   * measurement failed, then its outcome is ignored): checks what the load
   * left behind (e.g. that no capture was dropped) and stops what `prepare`
   * started (e.g. a shadow server). What it returns becomes extra columns
   * of the row.
   */
  finish(): Promise<Readonly<Record<string, number>> | void>;
}

/** What every target measured on a server has: a row, a host. */
interface TargetBase extends RowBase {
  readonly host: HostSpec;
  /**
   * Runs against the fresh host before anything is measured (e.g. registers
   * the instances a read workload reads), from this process. It may return
   * a {@link Prepared} to run after the measurement.
   */
  readonly prepare?: (address: string) => Promise<void | Prepared>;
}

/** One server measured under unary load (closed loop, or paced): which host runs it and which scenario loads it. */
export interface LoadTarget extends TargetBase {
  /** URL of the compiled scenario module (see `LoadScenario`). */
  readonly scenario: string;
  /** Calls in flight when not `--concurrency` (e.g. a latency goal taken below saturation). */
  readonly concurrency?: number;
  /** Load client processes when not `--clients`. */
  readonly clients?: number;
  /**
   * Calls per second over the clients, open loop, `concurrency` capping the
   * calls in flight (e.g. a latency probe beside a `background` load);
   * absent: closed loop.
   */
  readonly ratePerSecond?: number;
  /**
   * Paced like {@link ratePerSecond}, at `share` × the ops/s of the target
   * labelled `label` as measured earlier in the same run (e.g. half the
   * ceiling's), so that a latency goal stated against a rate follows the
   * machine's speed of the moment. The row gets the rate asked for as an
   * `asked ops/s` column.
   */
  readonly paceAt?: { readonly label: string; readonly share: number };
  /** What an op carries, for a `<unit>/s` column. */
  readonly unit?: OpUnit;
  /**
   * Paced load beside the measured one, from one more client process (see
   * `BackgroundLoad`). Its rate and p99 become the columns `bg <unit>/s` (or
   * `bg ops/s`) and `bg p99 ms`; the row's server CPU/op includes its work.
   */
  readonly background?: BackgroundLoad & { readonly unit?: OpUnit };
}

/**
 * A raw pipeline measured in a process of its own (see `PipelineScenario`):
 * no host, no load clients. Its row reads: ops/s = operations completed per
 * second with `concurrency` in flight, latencies per operation, CPU and GC
 * µs/op of the pipeline process; client CPU is blank.
 */
export interface PipelineTarget extends RowBase {
  readonly pipeline: {
    /** URL of the compiled pipeline module. */
    readonly scenario: string;
    /** Operations in flight. */
    readonly concurrency: number;
  };
  readonly unit?: OpUnit;
}

/**
 * One server measured under watch fan-out (see `runWatch`). Its row reads:
 * ops/s = deliveries per second, latencies = delivery latency, CPU µs/op =
 * server CPU per delivery, RSS = with every stream open, and the extra
 * columns `streams`, `writes`, `missed` and `KB/stream` (RSS growth per open
 * stream, 1 KB = 1000 bytes).
 */
export interface WatchTarget extends TargetBase {
  readonly watch: {
    /** URL of the compiled watch scenario module (see `WatchScenario`). */
    readonly scenario: string;
    /** Connects the writer whose changes the watchers receive. */
    readonly writer: (address: string) => Promise<FanOutWriter>;
    /** Streams of this target when not `BenchOptions.watch.streams`. */
    readonly streams?: number;
    /** Writes per second of this target when not `BenchOptions.watch.rate`. */
    readonly rate?: number;
  };
}

/** One server (or raw pipeline) measured by a bench. */
export type BenchTarget = LoadTarget | WatchTarget | PipelineTarget;

/** A named bench: its targets, always measured next to the ceiling, and its optional goal. */
export interface Bench {
  readonly name: string;
  /** One line for the bench list. */
  readonly description: string;
  targets(options: BenchOptions): readonly BenchTarget[];
  readonly goal?: BenchGoal;
  /** Names `--workloads` may select, for a bench that has several. */
  readonly workloads?: readonly string[];
  /** Judges the bench's goals against the medians (rows: the ceiling first, then the targets). */
  checks?(rows: readonly SummaryRow[], options: BenchOptions): readonly Check[];
}

/** The bare grpc-js Health/Check server every bench is compared to. */
const ceiling: BenchTarget = { label: "ceiling", host: { kind: "ceiling" }, scenario: healthCheckScenario };

/**
 * Runs a bench: `runs` rounds, each measuring the ceiling and then every
 * target back to back (ceiling, target, ceiling, target…), each on a fresh
 * host process, so that noise spreads over all of them; then summarizes
 * medians and ratios to the ceiling.
 */
export async function runBench(bench: Bench, options: BenchOptions): Promise<BenchSummary> {
  const targets = [ceiling, ...bench.targets(options)];
  const runs: Measurement[][] = [];
  for (let run = 1; run <= options.runs; run++) {
    const measurements: Measurement[] = [];
    for (const target of targets) {
      const measurement = await measure(target, options, measurements);
      options.progress(
        `${bench.name} run ${run}/${options.runs} ${target.label}: ${measurement.opsPerSecond.toFixed(0)} ops/s, ` +
          `${measurement.cpuMicrosPerOp.toFixed(1)} CPU µs/op (GC ${measurement.gcMicrosPerOp.toFixed(1)}), p99 ${measurement.p99Ms.toFixed(2)} ms, ` +
          (Number.isNaN(measurement.clientCpuMicrosPerOp) ? "no client" : `client ${measurement.clientCpuMicrosPerOp.toFixed(1)} CPU µs/op`) +
          Object.entries(measurement.extras ?? {})
            .map(([key, value]) => `, ${key} ${Number.isInteger(value) ? value : value.toFixed(1)}`)
            .join(""),
      );
      measurements.push(measurement);
    }
    runs.push(measurements);
  }
  const summary = summarize(bench.name, runs, bench.goal, targets);
  return bench.checks === undefined ? summary : { ...summary, checks: bench.checks(summary.rows, options) };
}

/** Measures `target`; `earlier` holds this run's measurements so far (see `LoadTarget.paceAt`). */
async function measure(target: BenchTarget, options: BenchOptions, earlier: readonly Measurement[]): Promise<Measurement> {
  if ("pipeline" in target) return measurePipeline(target, options);
  const host = await startHost(target.host, options.hostExecArgv);
  try {
    const prepared = (await target.prepare?.(host.address)) ?? undefined;
    let measurement: Measurement;
    try {
      measurement = "watch" in target ? await measureWatch(target, host, options) : await measureLoad(target, host, options, earlier);
    } catch (error) {
      await prepared?.finish().catch(() => undefined);
      throw error;
    }
    const extras = (await prepared?.finish()) ?? undefined;
    return extras === undefined ? measurement : { ...measurement, extras: { ...measurement.extras, ...extras } };
  } finally {
    await host.stop();
  }
}

/** The calls per second `target` is paced at, if it is paced. */
function pacedRate(target: LoadTarget, earlier: readonly Measurement[]): number | undefined {
  if (target.paceAt === undefined) return target.ratePerSecond;
  const { label, share } = target.paceAt;
  const reference = earlier.find((m) => m.label === label);
  if (reference === undefined) throw new Error(`target "${target.label}" is paced at a share of "${label}", which was not measured before it`);
  return reference.opsPerSecond * share;
}

async function measureLoad(target: LoadTarget, host: Host, options: BenchOptions, earlier: readonly Measurement[]): Promise<Measurement> {
  const ratePerSecond = pacedRate(target, earlier);
  const { result, before, after, background } = await runLoad({
    address: host.address,
    scenario: target.scenario,
    settings: {
      ...options,
      concurrency: target.concurrency ?? options.concurrency,
      clients: Math.min(target.clients ?? options.clients, target.concurrency ?? options.concurrency),
      ...(ratePerSecond !== undefined ? { ratePerSecond } : {}),
    },
    sample: () => host.stats(),
    ...(target.background !== undefined ? { background: target.background } : {}),
  });
  const extras = {
    ...unitRate(target.unit, result.opsPerSecond, "", result.unitsPerSecond),
    ...(target.paceAt !== undefined && ratePerSecond !== undefined ? { "asked ops/s": Math.round(ratePerSecond) } : {}),
    ...(background !== undefined ? backgroundExtras(background, target.background?.unit) : {}),
  };
  return {
    label: target.label,
    opsPerSecond: result.opsPerSecond,
    ...window(result, before, after, result.ops),
    rssMiB: after.rssBytes / (1024 * 1024),
    ...(Object.keys(extras).length > 0 ? { extras } : {}),
  };
}

async function measurePipeline(target: PipelineTarget, options: BenchOptions): Promise<Measurement> {
  const result = await runPipeline({
    scenario: target.pipeline.scenario,
    concurrency: target.pipeline.concurrency,
    durability: options.durability,
    warmupSeconds: options.warmupSeconds,
    durationSeconds: options.durationSeconds,
    execArgv: options.hostExecArgv,
  });
  const extras = unitRate(target.unit, result.opsPerSecond);
  return {
    label: target.label,
    opsPerSecond: result.opsPerSecond,
    p50Ms: result.p50Ms,
    p90Ms: result.p90Ms,
    p99Ms: result.p99Ms,
    cpuMicrosPerOp: result.cpuMicrosPerOp,
    gcMicrosPerOp: result.gcMicrosPerOp,
    clientCpuMicrosPerOp: Number.NaN,
    rssMiB: result.rssBytes / (1024 * 1024),
    ...(Object.keys(extras).length > 0 ? { extras } : {}),
  };
}

/**
 * The `<unit>/s` column of a row whose ops carry `unit`, rounded to a whole
 * number: the units counted from the answers when the scenario counts them
 * (`counted`), else ops/s × `perOp`.
 */
function unitRate(unit: OpUnit | undefined, opsPerSecond: number, prefix = "", counted?: number): Record<string, number> {
  return unit === undefined ? {} : { [`${prefix}${unit.name}/s`]: Math.round(counted ?? opsPerSecond * unit.perOp) };
}

function backgroundExtras(background: LoadResult, unit: OpUnit | undefined): Record<string, number> {
  return {
    ...(unit === undefined ? { "bg ops/s": background.opsPerSecond } : unitRate(unit, background.opsPerSecond, "bg ", background.unitsPerSecond)),
    "bg p99 ms": background.p99Ms,
  };
}

async function measureWatch(target: WatchTarget, host: Host, options: BenchOptions): Promise<Measurement> {
  const { result, idle, opened, after } = await runWatch({
    address: host.address,
    scenario: target.watch.scenario,
    settings: { ...options.watch, streams: target.watch.streams ?? options.watch.streams, rate: target.watch.rate ?? options.watch.rate },
    writer: target.watch.writer,
    sample: (gc) => host.stats({ gc }),
  });
  if (result.failedStreams > 0) options.progress(`${target.label}: ${result.failedStreams} streams failed, first: ${result.firstError ?? "?"}`);
  return {
    label: target.label,
    opsPerSecond: result.deliveriesPerSecond,
    ...window(result, opened, after, result.delivered),
    rssMiB: opened.rssBytes / (1024 * 1024),
    extras: {
      streams: result.streams,
      writes: result.writes,
      missed: result.expected - result.delivered,
      "max ms": result.maxMs,
      "idle MiB": idle.rssBytes / (1024 * 1024),
      "KB/stream": (opened.rssBytes - idle.rssBytes) / result.streams / 1000,
    },
  };
}

/** The latencies of a measured window and its CPU and GC time per operation, server samples taken at its start and end. */
function window(
  result: { readonly p50Ms: number; readonly p90Ms: number; readonly p99Ms: number; readonly clientCpuMicros: number },
  start: HostStats,
  end: HostStats,
  ops: number,
): Pick<Measurement, "p50Ms" | "p90Ms" | "p99Ms" | "cpuMicrosPerOp" | "gcMicrosPerOp" | "clientCpuMicrosPerOp"> {
  return {
    p50Ms: result.p50Ms,
    p90Ms: result.p90Ms,
    p99Ms: result.p99Ms,
    cpuMicrosPerOp: (cpuMicros(end) - cpuMicros(start)) / ops,
    gcMicrosPerOp: ((end.gcMs - start.gcMs) * 1000) / ops,
    clientCpuMicrosPerOp: result.clientCpuMicros / ops,
  };
}

function cpuMicros(stats: HostStats): number {
  return stats.cpu.user + stats.cpu.system;
}
