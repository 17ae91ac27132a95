import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import { defaultCollectorLimits } from "../../../server/core/tracing/model.js";
import { sloComplianceReport, type SloCompliance } from "../../../server/core/tracing/slo.js";
import { thrown } from "./builders.js";

const oneToHundred = Array.from({ length: 100 }, (_, i) => i + 1);

function reportFor(durations: number[], sloMs: number): SloCompliance {
  return sloComplianceReport(new Map([["svc", durations]]), { svc: sloMs })[0]!;
}

describe("sloComplianceReport", () => {
  it.each<[string, number[], number, Partial<SloCompliance>]>([
    ["1..100 against 90 ms: 10 violations, 90 % compliant, p99 99", oneToHundred, 90, { violations: 10, compliancePct: 90, p99Ms: 99 }],
    ["all within: 100 %", [1, 2, 3], 5, { violations: 0, compliancePct: 100, p99Ms: 3 }],
    ["all over: 0 %", [6, 7], 5, { violations: 2, compliancePct: 0, p99Ms: 7 }],
    ["a duration equal to the SLO complies", [5, 5, 6], 5, { violations: 1 }],
    ["a fractional duration just over the SLO violates it", [15.4], 15, { violations: 1, compliancePct: 0 }],
    ["one in three over: 66.67 %", [1, 2, 30], 25, { violations: 1 }],
    ["no samples: vacuously 100 %, no p99", [], 25, { violations: 0, compliancePct: 100, sampleCount: 0 }],
  ])("%s", (_, durations, slo, expected) => {
    const line = reportFor(durations, slo);
    expect(line).toMatchObject({ serviceName: "svc", sloMs: slo, sampleCount: durations.length, ...expected });
  });

  it("computes compliance as a share of samples", () => {
    expect(reportFor([1, 2, 30], 25).compliancePct).toBeCloseTo(200 / 3, 10);
  });

  it("omits p99 without samples", () => {
    expect("p99Ms" in reportFor([], 25)).toBe(false);
  });

  it("reports the services with an SLO, by name, and ignores the others", () => {
    const report = sloComplianceReport(
      new Map([
        ["mirror", [4, 6]],
        ["unlisted", [1000]],
        ["discovery", [10]],
      ]),
      defaultCollectorLimits().serviceSlosMs,
    );
    expect(report.map((line) => [line.serviceName, line.sloMs, line.violations, line.sampleCount])).toEqual([
      ["discovery", 15, 0, 1],
      ["mirror", 5, 1, 2],
      ["tracing", 25, 0, 0],
    ]);
  });

  it.each<[number, string]>([
    [0, "must be > 0 ms, got 0"],
    [-5, "must be > 0 ms, got -5"],
    [Number.NaN, "must be > 0 ms, got NaN"],
  ])("rejects an SLO of %s", (slo, reason) => {
    const error = thrown(() => sloComplianceReport(new Map(), { svc: slo }));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).field).toBe('slo_by_service["svc"]');
    expect((error as InvalidFieldError).reason).toBe(reason);
  });
});
