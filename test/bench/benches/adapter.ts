import { healthCheckScenario } from "../scenarios/health-check.js";
import type { Bench } from "../harness/bench.js";

/**
 * The gRPC port's edge stack (grpc-js adapter + instrumentation) around a
 * trivial Health/Check, next to the ceiling answering the same constant:
 * the difference is the per-call cost of the adapter alone, which should
 * stay within 15% of server CPU.
 */
export const adapterBench: Bench = {
  name: "adapter",
  description: "createGrpcServer + instrumentService with a trivial Check vs the bare grpc-js ceiling (goal: CPU/op ≤ 1.15×)",
  targets: () => [{ label: "adapter", host: { kind: "adapter" }, scenario: healthCheckScenario }],
  goal: { target: "adapter", maxCpuRatio: 1.15 },
};
