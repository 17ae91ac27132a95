/**
 * Diff analysis across many results (the seed's `analyze_diffs`): the diff
 * rate against a threshold, which fields differ most, which are noise, a few
 * example request ids per field, and recommendations.
 *
 * Results are folded into a {@link DiffTally} first, so the store can keep a
 * running tally per mirror instead of every result; `analyzeDiffs` accepts
 * either.
 *
 * Counting rules:
 * - only `compared` results (both responses available) count towards diffs
 *   and noise; failed results are counted by error kind;
 * - a field counts at most once per request, by its generalised key
 *   (`items[*].price`), for candidate and for noise diffs alike;
 * - the diff rate is requests with any candidate diff / compared requests;
 * - an alert is raised when the diff rate exceeds the threshold *and* at
 *   least one field is reported after noise cancellation (see `noise.ts`):
 *   differences explained by noise do not alert;
 * - example request ids are the first {@link maxExampleRequestIds} seen per
 *   field (Diffy keeps 5).
 *
 * Every list is ordered deterministically: counts descending, then field in
 * code-unit order.
 */
import { compareText } from "../registry/ordering.js";
import type { MirrorErrorKind, MirrorResult } from "./model.js";
import {
  checkFraction,
  classifyField,
  resolveNoiseThresholds,
  type FieldVerdict,
  type NoiseThresholds,
} from "./noise.js";

/** Example request ids kept per field. */
export const maxExampleRequestIds = 5;

/** The default diff-rate alert threshold (the seed's `threshold=0.05`). */
export const defaultDiffThreshold = 0.05;

/** A field's running counts. */
export interface FieldTally {
  readonly candidateDiffs: number;
  readonly noiseDiffs: number;
  /** The first request ids with a candidate diff in the field, at most {@link maxExampleRequestIds}. */
  readonly exampleRequestIds: readonly string[];
}

/** The kinds of failure counted separately. */
export type FailureKind = Exclude<MirrorErrorKind, "none">;

/** Running counts over results. */
export interface DiffTally {
  readonly results: number;
  readonly failures: Readonly<Record<FailureKind, number>>;
  /** Results with both responses diffed. */
  readonly compared: number;
  /** Compared results with at least one candidate diff. */
  readonly diffRequests: number;
  /** Compared results that also had a secondary (noise) sample. */
  readonly noiseSamples: number;
  readonly fields: ReadonlyMap<string, FieldTally>;
}

/** A tally of nothing. */
export const emptyDiffTally: DiffTally = {
  results: 0,
  failures: { timeout: 0, connection: 0, http_status: 0 },
  compared: 0,
  diffRequests: 0,
  noiseSamples: 0,
  fields: new Map(),
};

/** `base` with `results` folded in (see the module comment's counting rules). */
export function tallyResults(results: readonly MirrorResult[], base: DiffTally = emptyDiffTally): DiffTally {
  const failures = { ...base.failures };
  const fields = new Map<string, { candidateDiffs: number; noiseDiffs: number; exampleRequestIds: string[] }>();
  for (const [field, tally] of base.fields) {
    fields.set(field, { ...tally, exampleRequestIds: [...tally.exampleRequestIds] });
  }
  const entry = (field: string) => {
    let tally = fields.get(field);
    if (tally === undefined) {
      tally = { candidateDiffs: 0, noiseDiffs: 0, exampleRequestIds: [] };
      fields.set(field, tally);
    }
    return tally;
  };
  let compared = base.compared;
  let diffRequests = base.diffRequests;
  let noiseSamples = base.noiseSamples;
  for (const result of results) {
    if (result.errorKind !== "none") failures[result.errorKind]++;
    if (!result.compared) continue;
    compared++;
    if (result.diffFields.length > 0) diffRequests++;
    if (result.noiseSampled) noiseSamples++;
    for (const field of new Set(result.diffFields)) {
      const tally = entry(field);
      tally.candidateDiffs++;
      if (tally.exampleRequestIds.length < maxExampleRequestIds) tally.exampleRequestIds.push(result.requestId);
    }
    for (const field of new Set(result.noiseFields)) entry(field).noiseDiffs++;
  }
  return { results: base.results + results.length, failures, compared, diffRequests, noiseSamples, fields };
}

/** Options of {@link analyzeDiffs}. */
export interface AnalyzeOptions {
  /** Diff rate above which to alert, in [0, 1]; default 0.05. */
  readonly threshold?: number;
  /** Noise-cancellation thresholds; Diffy's defaults for what is left out. */
  readonly noise?: Partial<NoiseThresholds>;
  /** Fields listed in `mostDifferingFields`; default 10. */
  readonly maxFields?: number;
}

/** One field in an analysis. */
export interface FieldAnalysis {
  readonly field: string;
  readonly candidateDiffs: number;
  readonly noiseDiffs: number;
  /** candidateDiffs / compared requests. */
  readonly diffRate: number;
  readonly relativeDifference: number;
  readonly absoluteDifference: number;
  readonly verdict: FieldVerdict;
  readonly exampleRequestIds: readonly string[];
}

/** The analysis report (the seed's `analyze_diffs` result). */
export interface DiffAnalysis {
  readonly results: number;
  readonly compared: number;
  readonly failed: number;
  readonly failures: Readonly<Record<FailureKind, number>>;
  readonly diffRequests: number;
  /** diffRequests / compared; 0 when nothing was compared. */
  readonly diffRate: number;
  readonly threshold: number;
  readonly alert: boolean;
  /** Reported fields, most candidate diffs first, at most `maxFields`. */
  readonly mostDifferingFields: readonly string[];
  /** Fields whose diffs are explained by noise, most noise diffs first. */
  readonly noiseFields: readonly string[];
  /** Whether any compared result had a secondary sample. */
  readonly noiseMeasured: boolean;
  /** Every field seen, most candidate diffs first. */
  readonly fields: readonly FieldAnalysis[];
  /** Plain sentences, in a fixed order; the same input gives the same text. */
  readonly recommendations: readonly string[];
}

/**
 * Analyses results, or a tally of them (see the module comment).
 *
 * @throws InvalidFieldError naming `threshold`, `noise_relative` or
 *   `noise_absolute` when one is outside [0, 1]
 */
export function analyzeDiffs(input: readonly MirrorResult[] | DiffTally, options: AnalyzeOptions = {}): DiffAnalysis {
  const threshold = options.threshold ?? defaultDiffThreshold;
  checkFraction(threshold, "threshold");
  const noise = resolveNoiseThresholds(options.noise);
  const tally = isTally(input) ? input : tallyResults(input);

  const fields: FieldAnalysis[] = [...tally.fields].map(([field, counts]) => {
    const signal = classifyField(counts, tally.compared, noise);
    return {
      field,
      candidateDiffs: counts.candidateDiffs,
      noiseDiffs: counts.noiseDiffs,
      diffRate: tally.compared === 0 ? 0 : counts.candidateDiffs / tally.compared,
      ...signal,
      exampleRequestIds: counts.exampleRequestIds,
    };
  });
  fields.sort((a, b) => b.candidateDiffs - a.candidateDiffs || compareText(a.field, b.field));
  const reported = fields.filter((field) => field.verdict === "reported");
  const noisy = fields
    .filter((field) => field.verdict === "noise")
    .sort((a, b) => b.noiseDiffs - a.noiseDiffs || compareText(a.field, b.field));
  const failed = tally.failures.timeout + tally.failures.connection + tally.failures.http_status;
  const diffRate = tally.compared === 0 ? 0 : tally.diffRequests / tally.compared;
  const alert = diffRate > threshold && reported.length > 0;
  const analysis = {
    results: tally.results,
    compared: tally.compared,
    failed,
    failures: tally.failures,
    diffRequests: tally.diffRequests,
    diffRate,
    threshold,
    alert,
    mostDifferingFields: reported.slice(0, options.maxFields ?? 10).map((field) => field.field),
    noiseFields: noisy.map((field) => field.field),
    noiseMeasured: tally.noiseSamples > 0,
    fields,
  };
  return { ...analysis, recommendations: recommend(analysis, reported, noisy) };
}

/**
 * The recommendations, in this order: no results; failures over the
 * threshold; nothing compared; alert (top 3 fields); over the threshold but
 * all noise; noise fields to ignore (top 5); no noise baseline; within the
 * threshold.
 */
function recommend(
  analysis: Omit<DiffAnalysis, "recommendations">,
  reported: readonly FieldAnalysis[],
  noisy: readonly FieldAnalysis[],
): string[] {
  const lines: string[] = [];
  if (analysis.results === 0) {
    return ["No mirror results yet: dispatch captured requests to the shadow, then analyse again."];
  }
  const failureRate = analysis.failed / analysis.results;
  if (analysis.failed > 0 && failureRate > analysis.threshold) {
    const { timeout, connection, http_status } = analysis.failures;
    lines.push(
      `${percent(failureRate)} of shadow requests failed ` +
        `(timeout ${timeout}, connection ${connection}, http_status ${http_status}): ` +
        "check the shadow's health and timeout_ms before trusting its diffs.",
    );
  }
  if (analysis.compared === 0) {
    lines.push(
      "No responses were compared: capture production responses with requests so shadow responses can be diffed.",
    );
    return lines;
  }
  const rate = `Diff rate ${percent(analysis.diffRate)}`;
  const limit = `the ${percent(analysis.threshold)} threshold`;
  if (analysis.alert) {
    const top = reported.slice(0, 3).map((field) => `${field.field} (${field.candidateDiffs} requests)`);
    lines.push(`${rate} exceeds ${limit}: investigate ${top.join(", ")} before promoting the shadow.`);
  } else if (analysis.diffRate > analysis.threshold) {
    lines.push(`${rate} exceeds ${limit}, but every differing field is within noise: no regression is indicated.`);
  }
  if (noisy.length > 0) {
    const names = noisy.slice(0, 5).map((field) => field.field);
    lines.push(`Non-deterministic fields (noise): add ${names.join(", ")} to ignore_fields to keep them out of diffs.`);
  }
  if (!analysis.noiseMeasured && analysis.diffRequests > 0) {
    lines.push(
      "No noise baseline: set secondary_endpoint (same code as production) so non-deterministic fields are cancelled.",
    );
  }
  if (analysis.diffRate <= analysis.threshold) lines.push(`${rate} is within ${limit}.`);
  return lines;
}

function isTally(input: readonly MirrorResult[] | DiffTally): input is DiffTally {
  return !Array.isArray(input);
}

function percent(share: number): string {
  return `${(share * 100).toFixed(2)}%`;
}
