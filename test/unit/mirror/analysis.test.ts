import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import { analyzeDiffs, emptyDiffTally, tallyResults } from "../../../server/core/mirror/analysis.js";
import type { MirrorResult } from "../../../server/core/mirror/model.js";
import { diffResult, mirrorResult, thrown } from "./builders.js";

/** `count` compared results with the given candidate (and optional noise) fields, ids `${prefix}-i`. */
function many(count: number, prefix: string, diffFields: string[], noiseFields?: string[]): MirrorResult[] {
  return Array.from({ length: count }, (_, i) => diffResult(`${prefix}-${i}`, diffFields, noiseFields));
}

describe("tallyResults", () => {
  it("counts fields once per request, keeps five examples and counts failures by kind", () => {
    const tally = tallyResults([
      ...many(7, "r", ["price", "price"]),
      diffResult("n-1", [], ["ts"]),
      mirrorResult({ requestId: "f-1", success: false, errorKind: "timeout", compared: false }),
      mirrorResult({ requestId: "f-2", success: false, errorKind: "connection", compared: false }),
      mirrorResult({ requestId: "f-3", success: false, errorKind: "http_status", responseCode: 503, compared: false, diffFields: ["x"] }),
    ]);
    expect(tally.results).toBe(11);
    expect(tally.compared).toBe(8);
    expect(tally.diffRequests).toBe(7);
    expect(tally.noiseSamples).toBe(1);
    expect(tally.failures).toEqual({ timeout: 1, connection: 1, http_status: 1 });
    expect(tally.fields.get("price")).toEqual({ candidateDiffs: 7, noiseDiffs: 0, exampleRequestIds: ["r-0", "r-1", "r-2", "r-3", "r-4"] });
    expect(tally.fields.get("ts")).toEqual({ candidateDiffs: 0, noiseDiffs: 1, exampleRequestIds: [] });
    expect(tally.fields.has("x")).toBe(false);
  });

  it("folds in increments without touching the base tally", () => {
    const first = tallyResults(many(3, "a", ["f"]));
    const second = tallyResults(many(4, "b", ["f"]), first);
    expect(second.fields.get("f")).toEqual({ candidateDiffs: 7, noiseDiffs: 0, exampleRequestIds: ["a-0", "a-1", "a-2", "b-0", "b-1"] });
    expect(first.fields.get("f")!.candidateDiffs).toBe(3);
    expect(tallyResults([...many(3, "a", ["f"]), ...many(4, "b", ["f"])])).toEqual(second);
    expect(emptyDiffTally.fields.size).toBe(0);
  });
});

describe("analyzeDiffs", () => {
  it("reports the diff rate, alerts over the threshold and ranks fields", () => {
    const results = [
      ...many(6, "p", ["price"]),
      ...many(3, "q", ["qty", "price"]),
      ...many(91, "ok", []),
    ];
    const report = analyzeDiffs(results);
    expect(report).toMatchObject({
      results: 100,
      compared: 100,
      failed: 0,
      diffRequests: 9,
      diffRate: 0.09,
      threshold: 0.05,
      alert: true,
      mostDifferingFields: ["price", "qty"],
      noiseFields: [],
      noiseMeasured: false,
    });
    expect(report.fields.map((field) => [field.field, field.candidateDiffs, field.verdict])).toEqual([
      ["price", 9, "reported"],
      ["qty", 3, "reported"],
    ]);
    expect(report.fields[1]!.exampleRequestIds).toEqual(["q-0", "q-1", "q-2"]);
    expect(report.recommendations).toEqual([
      "Diff rate 9.00% exceeds the 5.00% threshold: investigate price (9 requests), qty (3 requests) before promoting the shadow.",
      "No noise baseline: set secondary_endpoint (same code as production) so non-deterministic fields are cancelled.",
    ]);
  });

  it.each<[string, number, boolean]>([
    ["a rate equal to the threshold does not alert", 0.09, false],
    ["a rate just above it does", 0.089, true],
    ["threshold 0 alerts on any reported diff", 0, true],
    ["threshold 1 never alerts", 1, false],
  ])("%s", (_, threshold, alert) => {
    const report = analyzeDiffs([...many(9, "d", ["a"]), ...many(91, "ok", [])], { threshold });
    expect(report.alert).toBe(alert);
  });

  it("cancels noise: a field that differs as often between two productions is not reported and does not alert", () => {
    const results = [
      ...many(20, "both", ["ts", "price"], ["ts"]),
      ...many(10, "noise-only", [], ["ts"]),
      ...many(10, "ts-only", ["ts"], []),
      ...many(60, "clean", [], []),
    ];
    const report = analyzeDiffs(results);
    expect(report.diffRate).toBe(0.3);
    expect(report.alert).toBe(true);
    expect(report.mostDifferingFields).toEqual(["price"]);
    expect(report.noiseFields).toEqual(["ts"]);
    expect(report.fields.find((field) => field.field === "ts")).toMatchObject({ candidateDiffs: 30, noiseDiffs: 30, verdict: "noise" });
    expect(report.recommendations).toEqual([
      "Diff rate 30.00% exceeds the 5.00% threshold: investigate price (20 requests) before promoting the shadow.",
      "Non-deterministic fields (noise): add ts to ignore_fields to keep them out of diffs.",
    ]);
  });

  it("does not alert when every differing field is noise", () => {
    const report = analyzeDiffs([...many(20, "n", ["ts"], ["ts"]), ...many(80, "ok", [], [])]);
    expect(report.alert).toBe(false);
    expect(report.recommendations).toEqual([
      "Diff rate 20.00% exceeds the 5.00% threshold, but every differing field is within noise: no regression is indicated.",
      "Non-deterministic fields (noise): add ts to ignore_fields to keep them out of diffs.",
    ]);
  });

  it("honours configured noise thresholds", () => {
    // 14 candidate vs 10 noise diffs: relative 4/24 ≈ 16.7%, below Diffy's 20% but above 10%.
    const results = [...many(10, "a", ["f"], ["f"]), ...many(4, "b", ["f"], []), ...many(86, "ok", [], [])];
    expect(analyzeDiffs(results).mostDifferingFields).toEqual([]);
    expect(analyzeDiffs(results, { noise: { relative: 0.1 } }).mostDifferingFields).toEqual(["f"]);
  });

  it("reports failures and the absence of comparisons", () => {
    const report = analyzeDiffs([
      mirrorResult({ success: false, errorKind: "timeout", compared: false }),
      mirrorResult({ success: false, errorKind: "connection", compared: false }),
      mirrorResult({ compared: false }),
    ]);
    expect(report).toMatchObject({ results: 3, compared: 0, failed: 2, diffRate: 0, alert: false });
    expect(report.recommendations).toEqual([
      "66.67% of shadow requests failed (timeout 1, connection 1, http_status 0): check the shadow's health and timeout_ms before trusting its diffs.",
      "No responses were compared: capture production responses with requests so shadow responses can be diffed.",
    ]);
  });

  it("says so when there is nothing to analyse", () => {
    expect(analyzeDiffs([]).recommendations).toEqual([
      "No mirror results yet: dispatch captured requests to the shadow, then analyse again.",
    ]);
  });

  it("is within the threshold when diffs are rare", () => {
    const report = analyzeDiffs([...many(1, "d", ["a"], []), ...many(99, "ok", [], [])]);
    expect(report.alert).toBe(false);
    expect(report.recommendations).toEqual(["Diff rate 1.00% is within the 5.00% threshold."]);
  });

  it("analyses a stored tally exactly as the results it came from, and orders ties by field", () => {
    const results = [...many(3, "a", ["b", "a", "c"]), ...many(1, "z", ["z"]), ...many(6, "ok", [])];
    const fromResults = analyzeDiffs(results);
    expect(analyzeDiffs(tallyResults(results))).toEqual(fromResults);
    expect(fromResults.mostDifferingFields).toEqual(["a", "b", "c", "z"]);
    expect(analyzeDiffs(results, { maxFields: 2 }).mostDifferingFields).toEqual(["a", "b"]);
  });

  it.each([-0.1, 1.1, Number.NaN])("rejects threshold %s", (threshold) => {
    const error = thrown(() => analyzeDiffs([], { threshold }));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as Error).message).toBe(`threshold must be in [0, 1], got ${threshold}`);
  });
});
