import { healthCheckScenario } from "../scenarios/health-check.js";
import type { Bench } from "../harness/bench.js";

/**
 * The real control plane's `Health/Check` next to the ceiling: what the
 * whole server (adapter, instrumentation, health service, and whatever else
 * it runs meanwhile) costs per call over bare grpc-js.
 */
export const healthBench: Bench = {
  name: "health",
  description: "control plane Health/Check (startControlPlane, temp db) vs the bare grpc-js ceiling",
  targets: ({ durability }) => [{ label: "control-plane", host: { kind: "control-plane", durability }, scenario: healthCheckScenario }],
};
