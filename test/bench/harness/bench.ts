import type { Durability } from "../../../server/store/database.js";
import { healthCheckScenario } from "../scenarios/health-check.js";
import type { HostSpec, HostStats } from "./host-protocol.js";
import { startHost } from "./hosts.js";
import { runLoad, type LoadSettings } from "./load-runner.js";
import { summarize, type BenchGoal, type BenchSummary, type Measurement } from "./report.js";

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
}

/** One server measured by a bench: which host runs it and which scenario loads it. */
export interface BenchTarget {
  readonly label: string;
  readonly host: HostSpec;
  /** URL of the compiled scenario module (see `LoadScenario`). */
  readonly scenario: string;
}

/** A named bench: its targets, always measured next to the ceiling, and its optional goal. */
export interface Bench {
  readonly name: string;
  /** One line for the bench list. */
  readonly description: string;
  targets(options: BenchOptions): readonly BenchTarget[];
  readonly goal?: BenchGoal;
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
      const measurement = await measure(target, options);
      options.progress(
        `${bench.name} run ${run}/${options.runs} ${target.label}: ${measurement.opsPerSecond.toFixed(0)} ops/s, ` +
          `${measurement.cpuMicrosPerOp.toFixed(1)} CPU µs/op (GC ${measurement.gcMicrosPerOp.toFixed(1)}), p99 ${measurement.p99Ms.toFixed(2)} ms`,
      );
      measurements.push(measurement);
    }
    runs.push(measurements);
  }
  return summarize(bench.name, runs, bench.goal);
}

async function measure(target: BenchTarget, options: BenchOptions): Promise<Measurement> {
  const host = await startHost(target.host, options.hostExecArgv);
  try {
    const { result, before, after } = await runLoad({
      address: host.address,
      scenario: target.scenario,
      settings: options,
      sample: () => host.stats(),
    });
    return {
      label: target.label,
      opsPerSecond: result.opsPerSecond,
      p50Ms: result.p50Ms,
      p90Ms: result.p90Ms,
      p99Ms: result.p99Ms,
      cpuMicrosPerOp: (cpuMicros(after) - cpuMicros(before)) / result.ops,
      rssMiB: after.rssBytes / (1024 * 1024),
      gcMicrosPerOp: ((after.gcMs - before.gcMs) * 1000) / result.ops,
    };
  } finally {
    await host.stop();
  }
}

function cpuMicros(stats: HostStats): number {
  return stats.cpu.user + stats.cpu.system;
}
