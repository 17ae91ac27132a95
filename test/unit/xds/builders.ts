/**
 * Instance records for the xDS unit tests, made only through the registry's
 * record transitions (`record.ts`), so the tests follow the record shape as
 * it grows.
 */
import { defaultHealthScoring } from "../../../server/core/registry/health-score.js";
import type { InstanceInput, InstanceRecord } from "../../../server/core/registry/model.js";
import { healthRecord, registeredRecord, staleRecord } from "../../../server/core/registry/record.js";
import { instanceInput, t0 } from "../registry/builders.js";

/** The scoring the records below are evaluated with: 10 s window, 250 ms target, 5 min warm-up. */
const scoring = defaultHealthScoring();

/** The registry tests' valid instance input, without metadata; override any field. */
function input(overrides: Partial<InstanceInput>): InstanceInput {
  return instanceInput({ metadata: {}, ...overrides });
}

/** A freshly registered (healthy, routable) record. */
export function healthy(overrides: Partial<InstanceInput> = {}): InstanceRecord {
  return registeredRecord(input(overrides), t0);
}

/** A record whose latest health check failed. */
export function unhealthy(overrides: Partial<InstanceInput> = {}): InstanceRecord {
  const record = healthy(overrides);
  return healthRecord(record, { instanceId: record.instance.instanceId, healthy: false, latencyMs: 5, consecutiveFailures: 3 }, t0 + 1, scoring);
}

/** A record without a heartbeat within the timeout. */
export function stale(overrides: Partial<InstanceInput> = {}): InstanceRecord {
  return staleRecord(healthy(overrides), t0 + 1, scoring);
}

/**
 * A record that is healthy and fresh but degraded: its checks pass at 1000×
 * the latency target for three score windows, so its score fell below 0.3.
 */
export function degraded(overrides: Partial<InstanceInput> = {}): InstanceRecord {
  const record = healthy(overrides);
  const slow = { instanceId: record.instance.instanceId, healthy: true, latencyMs: 250_000, consecutiveFailures: 0 };
  const first = healthRecord(record, slow, t0 + 1, scoring);
  return healthRecord(first, slow, t0 + 1 + 3 * scoring.windowMs, scoring);
}

/**
 * A record warming up: it failed a check and passed the next one, so it is
 * routable again with its weight scaled down by the first ramp step.
 */
export function warmingUp(overrides: Partial<InstanceInput> = {}): InstanceRecord {
  const failed = unhealthy(overrides);
  return healthRecord(failed, { instanceId: failed.instance.instanceId, healthy: true, latencyMs: 5, consecutiveFailures: 0 }, t0 + 2, scoring);
}
