import type { Bench } from "../harness/bench.js";
import { requireRow } from "../harness/report.js";
import { serviceCount } from "../scenarios/registry-records.js";
import { xdsEdsScenario } from "../scenarios/xds-eds.js";
import { registryWriter } from "./registry-peers.js";

/** The shape: 1,000 ADS streams, each subscribed to the endpoints of one of 100 services. */
const streams = 1000;
/** Registrations per second: each reaches the 10 streams of its service. */
const rate = 50;

/**
 * xDS push latency (issue 7): {@link streams} ADS streams, stream `n`
 * subscribed (EDS, ACKing every response) to service `n % 100`, then
 * {@link rate} registrations/s spread over the 100 services; latency from
 * just before a Register is sent to the receipt of the EDS response that
 * carries it on each stream of that service. Goal: p99 ≤ 100 ms; server RSS
 * growth per stream reported.
 */
export const xdsBench: Bench = {
  name: "xds",
  description: `EDS push latency over ${streams} ADS streams on ${serviceCount} services (goal: issue 7)`,
  targets(options) {
    return [
      {
        label: "xds eds push",
        host: { kind: "control-plane", durability: options.durability, maxInstancesPerService: 1_000_000 },
        section: `EDS fan-out (${streams} streams, ${rate} registrations/s for ${options.watch.seconds} s; ops = EDS responses, CPU and GC per response)`,
        watch: { scenario: xdsEdsScenario, writer: registryWriter, streams, rate },
      },
    ];
  },
  checks: (rows) => {
    const row = requireRow(rows, "xds eds push");
    return [
      { name: "xds eds push p99 ms", value: row.p99Ms.toFixed(2), goal: "≤ 100", pass: row.p99Ms <= 100 },
      {
        name: "xds server RSS growth KB/stream",
        value: (row.extras?.["KB/stream"] ?? Number.NaN).toFixed(1),
        goal: "reported",
        pass: undefined,
      },
    ];
  },
};
