/**
 * `npm run bench -- <name|all> [flags]`: runs benches against the bare
 * grpc-js ceiling and prints a table of medians per bench. Without a name it
 * lists the benches. Exits 0 whether or not a goal is met; 1 when something
 * crashed, 2 for bad usage.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { adapterBench } from "./benches/adapter.js";
import { healthBench } from "./benches/health.js";
import { mirrorBench } from "./benches/mirror.js";
import { registryBench } from "./benches/registry.js";
import { tracingBench } from "./benches/tracing.js";
import { xdsBench } from "./benches/xds.js";
import { runBench, type Bench, type BenchOptions } from "./harness/bench.js";
import { findEtcd } from "./harness/etcd-host.js";
import { removeHostDirs } from "./harness/hosts.js";
import { killChildren } from "./harness/processes.js";
import { formatSummary, type BenchSummary } from "./harness/report.js";

/** Every bench, in the order `all` runs them. */
const benches: readonly Bench[] = [healthBench, adapterBench, registryBench, tracingBench, mirrorBench, xdsBench];

const usage = `Usage: npm run bench -- <bench|all> [flags]

Flags:
  --duration <s>      measured seconds per target and run (default 5)
  --warmup <s>        seconds of load before measuring (default 1)
  --concurrency <n>   calls in flight, spread over the clients (default 64)
  --clients <n>       load client processes (default 1)
  --runs <n>          rounds of ceiling, target, …; the table shows medians (default 3)
  --durability <d>    control-plane hosts: full or normal (default full)
  --profile <dir>     run hosts under node --cpu-prof, profiles written to <dir>
  --json              print the results as JSON on stdout (the tables go to stderr)
  --raw-responses     load clients do not decode responses: server capacity rather
                      than end-to-end throughput on a machine the clients share

Registry bench:
  --workloads <list>  comma-separated subset of register,resolve,watch (default all)
  --etcd <path|none>  etcd executable to compare with (default: etcd on PATH, else
                      /usr/bin/etcd; none, or not found: etcd rows are skipped)
  --watchers <n>      WatchTopology streams of the watch workload (default 5000; 0 skips it)
  --etcd-watchers <n> etcd watchers, if fewer than --watchers (default: as many)
  --watch-rate <n>    writes per second while the watchers listen (default 5)
  --watch-seconds <s> seconds of writes (default 4, or --duration if shorter)
  --watch-clients <n> watch client processes (default 4)
  --streams-per-channel <n>
                      watch streams per grpc-js channel, i.e. HTTP/2 connection (default 250)

Tracing bench (--workloads: ingest,otlp,analysis):
  --ingest-clients <n>  load client processes of the ingest targets (default 2)
  --ingest-in-flight <n>
                      1,000-span batches in flight over them, and in the raw
                      pipelines (default 8)
  --background-rate <n>
                      spans/s of IngestBatch beside the analysis targets (default
                      25000, half the ingest goal; 0 for none)
  --analysis-rate <n> calls/s of each analysis probe, GetTrace and CriticalPath
                      (default 20, open loop)

Mirror bench (--workloads: capture,stream,dispatch):
  --stream-captures <n> captures per CaptureStream call (default 2000)
  --capture-streams <n> CaptureStream calls in flight (default 4)
  --stream-clients <n>  load client processes of the CaptureStream target (default 2)
  --capture-pace <share>
                      the paced Capture probe's calls/s as a share of the same
                      run's ceiling ops/s (default 0.35: half the 0.70 goal's rate)

Benches:
${benches.map((b) => `  ${b.name.padEnd(10)}${b.description}`).join("\n")}
  all       every bench above, one after the other`;

class UsageError extends Error {}

function numberFlag(value: string | undefined, fallback: number, name: string, min: number, integer: boolean): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed < min || (integer && !Number.isInteger(parsed))) {
    throw new UsageError(`--${name} must be ${integer ? "an integer" : "a number"} ≥ ${min}, got "${value}"`);
  }
  return parsed;
}

function parse(args: readonly string[]): { selected: readonly Bench[]; options: BenchOptions; json: boolean } | undefined {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      duration: { type: "string" },
      warmup: { type: "string" },
      concurrency: { type: "string" },
      clients: { type: "string" },
      runs: { type: "string" },
      durability: { type: "string" },
      profile: { type: "string" },
      json: { type: "boolean" },
      "raw-responses": { type: "boolean" },
      workloads: { type: "string" },
      etcd: { type: "string" },
      watchers: { type: "string" },
      "etcd-watchers": { type: "string" },
      "watch-rate": { type: "string" },
      "watch-seconds": { type: "string" },
      "watch-clients": { type: "string" },
      "streams-per-channel": { type: "string" },
      "ingest-clients": { type: "string" },
      "ingest-in-flight": { type: "string" },
      "background-rate": { type: "string" },
      "analysis-rate": { type: "string" },
      "stream-captures": { type: "string" },
      "capture-streams": { type: "string" },
      "stream-clients": { type: "string" },
      "capture-pace": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  const name = positionals[0];
  if (name === undefined || values.help === true) return undefined;
  if (positionals.length > 1) throw new UsageError(`one bench name expected, got ${positionals.join(" ")}`);
  const selected = name === "all" ? benches : benches.filter((b) => b.name === name);
  if (selected.length === 0) throw new UsageError(`no bench "${name}"; known: ${benches.map((b) => b.name).join(", ")}, all`);
  const durability = values.durability ?? "full";
  if (durability !== "full" && durability !== "normal") throw new UsageError(`--durability must be full or normal, got "${durability}"`);
  const json = values.json === true;
  const workloads = values.workloads?.split(",").map((w) => w.trim());
  if (workloads !== undefined) {
    const known = new Set(selected.flatMap((b) => b.workloads ?? []));
    const unknown = workloads.filter((w) => !known.has(w));
    if (unknown.length > 0 || workloads.length === 0) {
      throw new UsageError(`--workloads: unknown ${unknown.join(", ") || "(empty)"}; ${known.size > 0 ? `known: ${[...known].join(", ")}` : "the selected benches have none"}`);
    }
  }
  const durationSeconds = numberFlag(values.duration, 5, "duration", 0.1, false);
  const streams = numberFlag(values.watchers, 5000, "watchers", 0, true);
  const options: BenchOptions = {
    durationSeconds,
    warmupSeconds: numberFlag(values.warmup, 1, "warmup", 0, false),
    concurrency: numberFlag(values.concurrency, 64, "concurrency", 1, true),
    clients: numberFlag(values.clients, 1, "clients", 1, true),
    runs: numberFlag(values.runs, 3, "runs", 1, true),
    rawResponses: values["raw-responses"] === true,
    durability,
    hostExecArgv: values.profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`],
    progress: (line) => process.stderr.write(`${line}\n`),
    etcd: values.etcd === "none" ? undefined : findEtcd(values.etcd),
    watch: {
      streams,
      streamsPerChannel: numberFlag(values["streams-per-channel"], 250, "streams-per-channel", 1, true),
      clients: numberFlag(values["watch-clients"], 4, "watch-clients", 1, true),
      rate: numberFlag(values["watch-rate"], 5, "watch-rate", 0.1, false),
      seconds: numberFlag(values["watch-seconds"], Math.min(4, durationSeconds), "watch-seconds", 0.1, false),
    },
    etcdWatchers: numberFlag(values["etcd-watchers"], streams, "etcd-watchers", 1, true),
    workloads,
    tracing: {
      ingestClients: numberFlag(values["ingest-clients"], 2, "ingest-clients", 1, true),
      ingestInFlight: numberFlag(values["ingest-in-flight"], 8, "ingest-in-flight", 1, true),
      backgroundSpansPerSecond: numberFlag(values["background-rate"], 25_000, "background-rate", 0, false),
      analysisPerSecond: numberFlag(values["analysis-rate"], 20, "analysis-rate", 0.1, false),
    },
    mirror: {
      streamCaptures: numberFlag(values["stream-captures"], 2000, "stream-captures", 1, true),
      streamsInFlight: numberFlag(values["capture-streams"], 4, "capture-streams", 1, true),
      streamClients: numberFlag(values["stream-clients"], 2, "stream-clients", 1, true),
      capturePace: numberFlag(values["capture-pace"], 0.35, "capture-pace", 0.001, false),
    },
  };
  if (options.clients > options.concurrency) throw new UsageError("--clients must not exceed --concurrency");
  if (options.watch.clients > Math.max(1, options.watch.streams)) throw new UsageError("--watch-clients must not exceed --watchers");
  if (options.tracing.ingestClients > options.tracing.ingestInFlight) throw new UsageError("--ingest-clients must not exceed --ingest-in-flight");
  if (options.mirror.streamClients > options.mirror.streamsInFlight) throw new UsageError("--stream-clients must not exceed --capture-streams");
  return { selected, options, json };
}

async function main(args: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(args);
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n\n${usage}\n`);
    return 2;
  }
  if (parsed === undefined) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const { selected, options, json } = parsed;
  const summaries: BenchSummary[] = [];
  try {
    for (const bench of selected) {
      const summary = await runBench(bench, options);
      summaries.push(summary);
      (json ? process.stderr : process.stdout).write(`\n${formatSummary(summary)}\n`);
    }
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
  if (json) {
    const { progress: _progress, ...settings } = options;
    process.stdout.write(`${JSON.stringify({ settings, benches: summaries }, null, 2)}\n`);
  }
  return 0;
}

// Whatever ends the bench (the end, a crash, a signal) ends its children too.
process.on("exit", () => {
  killChildren();
  removeHostDirs();
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => process.exit(signal === "SIGINT" ? 130 : 143));
}
process.exit(await main(process.argv.slice(2)));
