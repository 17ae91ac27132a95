import type { BenchOptions, BenchTarget, Bench } from "../harness/bench.js";
import type { HostSpec } from "../harness/host-protocol.js";
import { findRow, requireRow, type Check, type SummaryRow } from "../harness/report.js";
import { etcdPutScenario } from "../scenarios/etcd-put.js";
import { etcdRangeScenario } from "../scenarios/etcd-range.js";
import { etcdWatchScenario } from "../scenarios/etcd-watch.js";
import { registerScenario } from "../scenarios/registry-register.js";
import { resolveScenario } from "../scenarios/registry-resolve.js";
import { registryWatchScenario } from "../scenarios/registry-watch.js";
import { etcdWriter, putResolveInstances, registerResolveInstances, registryWriter } from "./registry-peers.js";

/** Far above what a register run adds to one service (~1% of its writes). */
const maxInstancesPerService = 1_000_000;

const workloads = ["register", "resolve", "watch"] as const;

const inFlightOne = "(1 in flight)";
/** The resolve row the p99 goal is judged on. */
const latencyLabel = `resolve ${inFlightOne}`;

/**
 * The registry's performance goals (issue 4), each workload on a fresh
 * control plane with `--durability full`, and the same workload against etcd
 * (the store people use for this) in the same run when it is installed:
 * - register: `Register` of new instances (~300-byte records) over 100 services vs
 *   etcd PUTs of the same records as JSON. Goals: ops/s ≥ etcd's; server
 *   CPU/op ≤ 2 × the ceiling's.
 * - resolve: `Resolve` of one service of 100 instances vs etcd's
 *   (linearizable) prefix range read of the same 100 values. Goals: ops/s ≥
 *   3 × etcd's at `--concurrency`; p99 ≤ 15 ms with one call in flight.
 * - watch: `--watchers` WatchTopology streams of everything vs as many etcd
 *   prefix watches (one Watch stream each), then `--watch-rate` writes/s;
 *   latency from just before a write is sent to its receipt on each stream.
 *   Goals: p99 ≤ 100 ms; server RSS growth ≤ 20 KB per open stream.
 */
export const registryBench: Bench = {
  name: "registry",
  description: "Register, Resolve (100 instances), WatchTopology fan-out; etcd beside when installed (goals: issue 4)",
  workloads,
  targets(options) {
    const ours: HostSpec = { kind: "control-plane", durability: options.durability, maxInstancesPerService };
    const etcd: HostSpec | undefined = options.etcd === undefined ? undefined : { kind: "etcd", binary: options.etcd };
    if (etcd === undefined) options.progress("registry: no etcd executable (PATH, /usr/bin/etcd, --etcd): etcd rows and comparisons skipped");
    const selected = (workload: (typeof workloads)[number]): boolean => options.workloads?.includes(workload) ?? true;
    const targets: BenchTarget[] = [];
    if (selected("register")) {
      const section = "register (a new instance per call: ~225-byte protobuf, ~340-byte JSON for etcd)";
      targets.push({ label: "register", host: ours, scenario: registerScenario, section, ...(etcd !== undefined ? { peer: "etcd put" } : {}) });
      if (etcd !== undefined) targets.push({ label: "etcd put", host: etcd, scenario: etcdPutScenario, section });
    }
    if (selected("resolve")) {
      const section = "resolve (one service of 100 instances)";
      targets.push({
        label: "resolve",
        host: ours,
        scenario: resolveScenario,
        prepare: registerResolveInstances,
        section,
        ...(etcd !== undefined ? { peer: "etcd range" } : {}),
      });
      if (etcd !== undefined) targets.push({ label: "etcd range", host: etcd, scenario: etcdRangeScenario, prepare: putResolveInstances, section });
      // The p99 goal is a service-time goal: taken with one call in flight
      // rather than at saturation, where the closed loop's queue sets it
      // (p50 ≈ calls in flight ÷ ops/s).
      targets.push({ label: latencyLabel, host: ours, scenario: resolveScenario, prepare: registerResolveInstances, concurrency: 1, section });
      if (etcd !== undefined) {
        targets.push({ label: `etcd range ${inFlightOne}`, host: etcd, scenario: etcdRangeScenario, prepare: putResolveInstances, concurrency: 1, section });
      }
    }
    if (selected("watch") && options.watch.streams > 0) {
      const section = `watch fan-out (${options.watch.rate} writes/s for ${options.watch.seconds} s; ops = deliveries, CPU and GC per delivery)`;
      targets.push({ label: "watch", host: ours, section, watch: { scenario: registryWatchScenario, writer: registryWriter } });
      if (etcd !== undefined) {
        targets.push({
          label: "etcd watch",
          host: etcd,
          section,
          watch: { scenario: etcdWatchScenario, writer: etcdWriter, streams: Math.min(options.etcdWatchers, options.watch.streams) },
        });
      }
    }
    return targets;
  },
  checks: (rows, options) => [
    ...(findRow(rows, "register") === undefined ? [] : [peerCheck(rows, "register", 1, options), ceilingCpuCheck(rows, "register", 2)]),
    ...(findRow(rows, "resolve") === undefined ? [] : [peerCheck(rows, "resolve", 3, options), p99Check(rows, latencyLabel, 15, "", `etcd range ${inFlightOne}`)]),
    ...(findRow(rows, "watch") === undefined ? [] : [p99Check(rows, "watch", 100, "delivery "), perStreamCheck(rows, "watch", 20)]),
  ],
};

/** `label`'s ops/s ≥ `times` × its peer's, judged on the median of the per-run ratios. */
function peerCheck(rows: readonly SummaryRow[], label: string, times: number, options: BenchOptions): Check {
  const ours = requireRow(rows, label);
  const goal = `≥ ${times.toFixed(2)}`;
  if (ours.peer === undefined) {
    return { name: `${label} ops/s ÷ etcd's`, value: "—", goal, pass: undefined, note: options.etcd === undefined ? "no etcd: not found, or --etcd none" : "no etcd row" };
  }
  const peer = requireRow(rows, ours.peer.label);
  return {
    name: `${label} ops/s ÷ ${ours.peer.label} ops/s`,
    value: `${ours.peer.opsRatio.toFixed(2)} (${ours.opsPerSecond.toFixed(0)} vs ${peer.opsPerSecond.toFixed(0)})`,
    goal,
    pass: ours.peer.opsRatio >= times,
  };
}

function ceilingCpuCheck(rows: readonly SummaryRow[], label: string, times: number): Check {
  const ours = requireRow(rows, label);
  return {
    name: `${label} server CPU/op ÷ ceiling's`,
    value: `${ours.cpuRatio.toFixed(2)} (${ours.cpuMicrosPerOp.toFixed(1)} vs ${requireRow(rows, "ceiling").cpuMicrosPerOp.toFixed(1)} µs)`,
    goal: `≤ ${times.toFixed(2)}`,
    pass: ours.cpuRatio <= times,
  };
}

function p99Check(rows: readonly SummaryRow[], label: string, maxMs: number, what = "", peerLabel = `etcd ${label}`): Check {
  const ours = requireRow(rows, label);
  const peer = findRow(rows, peerLabel);
  return {
    name: `${label} ${what}p99 ms`,
    value: `${ours.p99Ms.toFixed(2)}${peer !== undefined ? ` (etcd ${peer.p99Ms.toFixed(2)})` : ""}`,
    goal: `≤ ${maxMs}`,
    pass: ours.p99Ms <= maxMs,
  };
}

function perStreamCheck(rows: readonly SummaryRow[], label: string, maxKB: number): Check {
  const ours = requireRow(rows, label);
  const perStream = ours.extras?.["KB/stream"] ?? Number.NaN;
  const peer = findRow(rows, `etcd ${label}`)?.extras?.["KB/stream"];
  return {
    name: `${label} server RSS growth KB/stream`,
    value: `${perStream.toFixed(1)}${peer !== undefined ? ` (etcd ${peer.toFixed(1)} per watcher)` : ""}`,
    goal: `≤ ${maxKB}`,
    pass: perStream <= maxKB,
  };
}
