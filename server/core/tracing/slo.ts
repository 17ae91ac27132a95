/**
 * The SLO compliance report (the seed's `slo_compliance_report`): per
 * service with an SLO, how its span durations compare with its latency
 * objective.
 */
import { InvalidFieldError } from "../errors.js";
import { compareText } from "./ordering.js";
import { percentiles } from "./percentiles.js";

/** One service's line of the report. */
export interface SloCompliance {
  readonly serviceName: string;
  readonly sloMs: number;
  /** Nearest-rank 99th percentile of the durations; absent without samples. */
  readonly p99Ms?: number;
  /** Share (0..100) of durations within the SLO; 100 without samples. */
  readonly compliancePct: number;
  /** Durations over the SLO (strictly: a duration equal to the SLO complies). */
  readonly violations: number;
  readonly sampleCount: number;
}

/**
 * Checks SLOs: each a finite number > 0 ms.
 *
 * @param field the request field, e.g. `slo_by_service`; an entry is named `slo_by_service["svc"]`
 * @throws InvalidFieldError naming the first bad entry
 */
export function validateSlos(slosMs: Readonly<Record<string, number>>, field = "slo_by_service"): void {
  for (const [service, slo] of Object.entries(slosMs)) {
    if (!Number.isFinite(slo) || slo <= 0) {
      throw new InvalidFieldError(`${field}[${JSON.stringify(service)}]`, `must be > 0 ms, got ${slo}`);
    }
  }
}

/**
 * One {@link SloCompliance} per service of `slosMs`, ordered by service
 * name. Services with durations but no SLO are not reported.
 *
 * @param durationsMsByService each service's span durations in ms; pass
 *   exact fractional values (ns / 10^6) to judge a 15.4 ms span against a
 *   15 ms SLO as a violation, floored `duration_ms` values to judge it as the
 *   seed's integer milliseconds do
 * @throws InvalidFieldError for an invalid SLO (see {@link validateSlos})
 */
export function sloComplianceReport(
  durationsMsByService: ReadonlyMap<string, readonly number[]>,
  slosMs: Readonly<Record<string, number>>,
): SloCompliance[] {
  validateSlos(slosMs);
  return Object.keys(slosMs)
    .sort(compareText)
    .map((serviceName) => {
      const sloMs = slosMs[serviceName]!;
      const durations = durationsMsByService.get(serviceName) ?? [];
      const violations = durations.filter((duration) => duration > sloMs).length;
      const p99 = percentiles(durations, [99])[0];
      return {
        serviceName,
        sloMs,
        ...(p99 !== undefined ? { p99Ms: p99.value } : {}),
        compliancePct: durations.length === 0 ? 100 : (100 * (durations.length - violations)) / durations.length,
        violations,
        sampleCount: durations.length,
      };
    });
}
