import { describe, expect, it } from "vitest";
import {
  anomalyEventOf,
  anomalyRules,
  anomalyTransition,
  bySlowestTrace,
  detectAnomaly,
  type Anomaly,
  type AnomalyEvent,
  type AnomalyRules,
  type AnomalyTransition,
} from "../../../server/core/tracing/anomalies.js";
import { summarizeTrace } from "../../../server/core/tracing/assembly.js";
import { defaultCollectorLimits, type TraceSummary } from "../../../server/core/tracing/model.js";
import { spans, type SpanSpec } from "./builders.js";

const rules: AnomalyRules = { thresholdMs: 1000, minErrorCount: 0 };
const withErrors: AnomalyRules = { thresholdMs: 1000, minErrorCount: 2 };

function summary(...specs: SpanSpec[]): TraceSummary {
  return summarizeTrace(spans(...specs));
}

/** A trace with a root lasting `ms` and `errors` error children. */
function rooted(ms: number, errors = 0): TraceSummary {
  const kids = Array.from({ length: errors }, (_, i): SpanSpec => ({ id: `e${i}`, parent: "r", start: 0, end: 1, status: "error" }));
  return summary({ id: "r", start: 0, end: ms, service: "gateway", op: "GET /" }, ...kids);
}

describe("detectAnomaly", () => {
  it.each<[string, TraceSummary, AnomalyRules, string[] | undefined]>([
    ["a trace under the threshold is not anomalous", rooted(999), rules, undefined],
    ["a trace exactly at the threshold is not anomalous", rooted(1000), rules, undefined],
    ["a trace 1 ns over the threshold is anomalous", rooted(1000.000001), rules, ["duration"]],
    ["a trace well over the threshold is anomalous", rooted(1500), rules, ["duration"]],
    ["errors do not count while the error condition is disabled", rooted(10, 5), rules, undefined],
    ["errors below the error threshold do not count", rooted(10, 1), withErrors, undefined],
    ["errors reaching the error threshold are anomalous", rooted(10, 2), withErrors, ["errors"]],
    ["both conditions give both reasons", rooted(2000, 3), withErrors, ["duration", "errors"]],
    [
      "TIMEOUT counts as an error, CANCELLED does not",
      summary(
        { id: "r", start: 0, end: 1 },
        { id: "t", parent: "r", start: 0, end: 1, status: "timeout" },
        { id: "c", parent: "r", start: 0, end: 1, status: "cancelled" },
      ),
      { thresholdMs: 1000, minErrorCount: 1 },
      ["errors"],
    ],
  ])("%s", (_, traceSummary, ruleSet, reasons) => {
    expect(detectAnomaly(traceSummary, ruleSet)?.reasons).toEqual(reasons);
  });

  it("reports the trace's figures, root and reason", () => {
    expect(detectAnomaly(rooted(1500, 2), withErrors)).toEqual({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      totalDurationNs: 1_500_000_000n,
      totalDurationMs: 1500,
      errorCount: 2,
      spanCount: 3,
      rootServiceName: "gateway",
      rootOperationName: "GET /",
      reasons: ["duration", "errors"],
      reason: "total duration 1500 ms is over the 1000 ms threshold; 2 error spans reach the threshold of 2",
    });
  });

  it("can judge a trace without a root yet, with no root fields", () => {
    const anomaly = detectAnomaly(summary({ id: "a", parent: "gone", start: 0, end: 2000 }), rules);
    expect(anomaly?.reasons).toEqual(["duration"]);
    expect(anomaly && "rootServiceName" in anomaly).toBe(false);
  });

  it("takes its rules from the collector limits", () => {
    expect(anomalyRules(defaultCollectorLimits({ anomalyThresholdMs: 50, anomalyMinErrorCount: 3 }))).toEqual({
      thresholdMs: 50,
      minErrorCount: 3,
    });
  });
});

describe("anomalyTransition: a late span that makes a known anomaly worse updates it", () => {
  const known = detectAnomaly(rooted(1500, 2), withErrors)!;
  const detect = (ms: number, errors: number, ruleSet = withErrors): Anomaly | undefined =>
    detectAnomaly(rooted(ms, errors), ruleSet);

  it.each<[string, Anomaly | undefined, Anomaly | undefined, string]>([
    ["nothing before or now", undefined, detect(10, 0), "none"],
    ["first anomalous: new", undefined, known, "new"],
    ["longer than reported: worsened", known, detect(1800, 2), "worsened"],
    ["more errors than reported: worsened", known, detect(1500, 3), "worsened"],
    ["a further reason alone (error condition enabled since): worsened", detect(1500, 2, rules), detect(1500, 2), "worsened"],
    ["the same again: unchanged, not a repeat", known, detect(1500, 2), "unchanged"],
    ["no longer anomalous under new rules: unchanged, never withdrawn", known, undefined, "unchanged"],
  ])("%s", (_, previous, current, kind) => {
    expect(anomalyTransition(previous, current).kind).toBe(kind);
  });

  it("a root arriving for an anomaly reported without one: worsened, so root-service filters see it", () => {
    const rootless = detectAnomaly(summary({ id: "a", parent: "gone", start: 0, end: 2000 }), rules)!;
    const { rootServiceName: _service, rootOperationName: _operation, ...withoutRoot } = known;
    expect(anomalyTransition(rootless, rootless).kind).toBe("unchanged");
    expect(anomalyTransition({ ...withoutRoot, totalDurationNs: known.totalDurationNs }, known).kind).toBe("worsened");
  });

  it.each<[string, AnomalyTransition, AnomalyEvent | undefined]>([
    ["new → detected", { kind: "new", anomaly: known }, { type: "detected", anomaly: known, detectedAtMs: 7 }],
    [
      "worsened → updated",
      { kind: "worsened", anomaly: known, previous: known },
      { type: "updated", anomaly: known, detectedAtMs: 7 },
    ],
    ["unchanged → no event", { kind: "unchanged", previous: known }, undefined],
    ["none → no event", { kind: "none" }, undefined],
  ])("anomalyEventOf: %s", (_, transition, event) => {
    expect(anomalyEventOf(transition, 7)).toEqual(event);
  });

  it("carries the new and the previous anomaly on worsened", () => {
    const worse = detect(1800, 2)!;
    expect(anomalyTransition(known, worse)).toEqual({ kind: "worsened", anomaly: worse, previous: known });
  });
});

describe("bySlowestTrace", () => {
  it("orders slowest first, then by trace_id", () => {
    const traces = [
      { traceId: "b", totalDurationNs: 5n },
      { traceId: "c", totalDurationNs: 9n },
      { traceId: "a", totalDurationNs: 5n },
    ];
    expect(traces.sort(bySlowestTrace).map((t) => t.traceId)).toEqual(["c", "a", "b"]);
  });
});
