import { describe, expect, it } from "vitest";
import {
  defaultCollectorLimits,
  durationMs,
  durationNs,
  isErrorStatus,
  msToNs,
  type SpanStatus,
} from "../../../server/core/tracing/model.js";
import { span, t0Ns } from "./builders.js";

function spanLasting(nanoseconds: bigint) {
  return { ...span({ id: "a", start: 0, end: 0 }), endTimeNs: t0Ns + nanoseconds };
}

describe("durationMs is the floor of (end − start) / 10^6", () => {
  it.each<[string, bigint, number]>([
    ["a zero-length span lasts 0 ms", 0n, 0],
    ["999,999 ns round down to 0 ms", 999_999n, 0],
    ["exactly 1 ms is 1 ms", 1_000_000n, 1],
    ["1.999999 ms round down to 1 ms", 1_999_999n, 1],
    ["2.5 ms round down to 2 ms", 2_500_000n, 2],
    ["an hour is 3,600,000 ms", 3_600_000_000_000n, 3_600_000],
  ])("%s", (_, nanoseconds, expected) => {
    const s = spanLasting(nanoseconds);
    expect(durationNs(s)).toBe(nanoseconds);
    expect(durationMs(s)).toBe(expected);
  });
});

describe("isErrorStatus", () => {
  it.each<[SpanStatus, boolean]>([
    ["ok", false],
    ["error", true],
    ["timeout", true],
    ["cancelled", false],
  ])("%s counts as an error: %s", (status, expected) => {
    expect(isErrorStatus(status)).toBe(expected);
  });
});

describe("defaultCollectorLimits", () => {
  it("takes the seed's defaults", () => {
    expect(defaultCollectorLimits()).toEqual({
      maxSpansPerTrace: 500,
      traceTtlMs: 3_600_000,
      anomalyThresholdMs: 1000,
      anomalyMinErrorCount: 0,
      serviceSlosMs: { discovery: 15, mirror: 5, tracing: 25 },
    });
  });

  it("keeps overrides and defaults the rest", () => {
    const limits = defaultCollectorLimits({ maxSpansPerTrace: 3, serviceSlosMs: { a: 1 } });
    expect(limits.maxSpansPerTrace).toBe(3);
    expect(limits.serviceSlosMs).toEqual({ a: 1 });
    expect(limits.traceTtlMs).toBe(3_600_000);
  });
});

describe("msToNs", () => {
  it.each<[number, bigint]>([
    [0, 0n],
    [1000, 1_000_000_000n],
    [1.5, 1_500_000n],
    [0.000001, 1n],
  ])("%s ms is %s ns", (ms, expected) => {
    expect(msToNs(ms)).toBe(expected);
  });
});
