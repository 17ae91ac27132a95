/**
 * Anomaly decisions for one trace, from its {@link TraceSummary}: whether it
 * is anomalous, why, and — for the anomaly watch — whether a change to a
 * trace already reported is news.
 *
 * A trace is anomalous when its total duration is over the threshold
 * (strictly, compared in nanoseconds: 1000.000001 ms is over 1000 ms), or,
 * when the error condition is enabled, when it has at least that many error
 * spans. A trace without a root yet can be anomalous; its root service and
 * operation are then absent.
 */
import { msToNs, type CollectorLimits, type Span, type TraceSummary } from "./model.js";
import { compareBigint, compareText } from "./ordering.js";

/** The thresholds an anomaly decision applies. */
export interface AnomalyRules {
  /** Total duration over this is anomalous. */
  readonly thresholdMs: number;
  /** At least this many error spans is anomalous; 0 disables the condition. */
  readonly minErrorCount: number;
}

/** What made a trace anomalous. */
export type AnomalyReason = "duration" | "errors";

/** An anomalous trace, as the anomaly watch reports it. */
export interface Anomaly {
  readonly traceId: string;
  readonly totalDurationNs: bigint;
  readonly totalDurationMs: number;
  readonly errorCount: number;
  readonly spanCount: number;
  readonly rootServiceName?: string;
  readonly rootOperationName?: string;
  /** Which conditions hold, in the order duration, errors. */
  readonly reasons: readonly AnomalyReason[];
  /** For people, e.g. `total duration 1500 ms is over the 1000 ms threshold`. */
  readonly reason: string;
}

/**
 * How a trace's anomaly changed with new spans:
 * - `none`: not anomalous, and not reported before;
 * - `new`: anomalous for the first time — report it;
 * - `worsened`: reported before and now longer, with more errors, with a
 *   further reason, or with its root newly known (so a watch filtered on
 *   the root service sees it) — report an update, not a repeat;
 * - `unchanged`: reported before and no worse (an anomaly is never
 *   withdrawn, even should a later decision not hold).
 */
export type AnomalyTransition =
  | { readonly kind: "none" }
  | { readonly kind: "new"; readonly anomaly: Anomaly }
  | { readonly kind: "worsened"; readonly anomaly: Anomaly; readonly previous: Anomaly }
  | { readonly kind: "unchanged"; readonly previous: Anomaly };

/** The anomaly rules of the collector's configuration. */
export function anomalyRules(limits: CollectorLimits): AnomalyRules {
  return { thresholdMs: limits.anomalyThresholdMs, minErrorCount: limits.anomalyMinErrorCount };
}

/**
 * What an anomaly decision reads of a trace: a {@link TraceSummary}, or the
 * store's per-trace row, which keeps the same figures and the root's names.
 */
export type AnomalySubject = Pick<
  TraceSummary,
  "traceId" | "spanCount" | "errorCount" | "totalDurationNs" | "totalDurationMs"
> & { readonly root?: Pick<Span, "serviceName" | "operationName"> };

/**
 * The anomaly `summary` shows under `rules`, or undefined when it shows none.
 */
export function detectAnomaly(summary: AnomalySubject, rules: AnomalyRules): Anomaly | undefined {
  const reasons: AnomalyReason[] = [];
  const texts: string[] = [];
  if (summary.totalDurationNs > msToNs(rules.thresholdMs)) {
    reasons.push("duration");
    texts.push(`total duration ${summary.totalDurationMs} ms is over the ${rules.thresholdMs} ms threshold`);
  }
  if (rules.minErrorCount > 0 && summary.errorCount >= rules.minErrorCount) {
    reasons.push("errors");
    texts.push(`${summary.errorCount} error spans reach the threshold of ${rules.minErrorCount}`);
  }
  if (reasons.length === 0) return undefined;
  const root = summary.root;
  return {
    traceId: summary.traceId,
    totalDurationNs: summary.totalDurationNs,
    totalDurationMs: summary.totalDurationMs,
    errorCount: summary.errorCount,
    spanCount: summary.spanCount,
    ...(root !== undefined ? { rootServiceName: root.serviceName, rootOperationName: root.operationName } : {}),
    reasons,
    reason: texts.join("; "),
  };
}

/**
 * Compares a trace's reported anomaly (if any) with its current one (if
 * any); see {@link AnomalyTransition}.
 */
export function anomalyTransition(previous: Anomaly | undefined, current: Anomaly | undefined): AnomalyTransition {
  if (previous === undefined) return current === undefined ? { kind: "none" } : { kind: "new", anomaly: current };
  if (current !== undefined && isWorse(current, previous)) return { kind: "worsened", anomaly: current, previous };
  return { kind: "unchanged", previous };
}

function isWorse(current: Anomaly, previous: Anomaly): boolean {
  return (
    current.totalDurationNs > previous.totalDurationNs ||
    current.errorCount > previous.errorCount ||
    current.reasons.some((reason) => !previous.reasons.includes(reason)) ||
    (previous.rootServiceName === undefined && current.rootServiceName !== undefined)
  );
}

/** One entry of the anomaly log: a trace's anomaly as reported, news or an update. */
export interface AnomalyEvent {
  /** `detected` for a {@link AnomalyTransition} `new`, `updated` for `worsened`. */
  readonly type: "detected" | "updated";
  readonly anomaly: Anomaly;
  /** When the collector recorded it (epoch ms). */
  readonly detectedAtMs: number;
}

/**
 * The event a transition reports, or undefined when it reports none
 * (`none`, `unchanged`).
 */
export function anomalyEventOf(transition: AnomalyTransition, nowMs: number): AnomalyEvent | undefined {
  if (transition.kind === "new") return { type: "detected", anomaly: transition.anomaly, detectedAtMs: nowMs };
  if (transition.kind === "worsened") return { type: "updated", anomaly: transition.anomaly, detectedAtMs: nowMs };
  return undefined;
}

/**
 * The order of `anomalous_traces`: slowest first, then trace_id ascending.
 */
export function bySlowestTrace(
  a: Pick<TraceSummary, "totalDurationNs" | "traceId">,
  b: Pick<TraceSummary, "totalDurationNs" | "traceId">,
): number {
  return compareBigint(b.totalDurationNs, a.totalDurationNs) || compareText(a.traceId, b.traceId);
}
