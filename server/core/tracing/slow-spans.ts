/**
 * Slow-span analysis (the seed's `slow_span_analysis`): the spans of a trace
 * over a latency threshold, with what makes each one matter — its share of
 * the trace, its self time and whether it is on the critical path.
 */
import { InvalidFieldError } from "../errors.js";
import { criticalPath } from "./critical-path.js";
import { msToNs, nsToMs, type Span, type TraceTree } from "./model.js";
import { byStartThenId, compareBigint } from "./ordering.js";
import { selfTimeNs } from "./self-time.js";

/** One slow span. */
export interface SlowSpan {
  readonly span: Span;
  readonly durationNs: bigint;
  readonly durationMs: number;
  /** Duration over the trace's total duration, 0..1. */
  readonly traceShare: number;
  /** Duration minus the union of its children (see `selfTimeNs`). */
  readonly selfNs: bigint;
  readonly selfMs: number;
  /** Whether the span owns at least one section of the trace's critical path. */
  readonly onCriticalPath: boolean;
}

/** The seed's default `limit`. */
export const defaultSlowSpanLimit = 50;

/**
 * The order of slow spans: longest first, then start time, then span_id.
 * Also for merging the lists of several traces.
 */
export function bySlowest(a: SlowSpan, b: SlowSpan): number {
  return compareBigint(b.durationNs, a.durationNs) || byStartThenId(a.span, b.span);
}

/**
 * The spans of `trace` whose duration is over `thresholdMs` (strictly,
 * compared in nanoseconds), ordered by {@link bySlowest}, at most `limit`.
 * Every span of the trace is considered, orphans included; only root-subtree
 * spans can be on the critical path.
 *
 * @param thresholdMs a finite number ≥ 0
 * @param limit an integer ≥ 1
 * @throws InvalidFieldError for a bad `threshold_ms` or `limit`
 */
export function slowSpans(trace: TraceTree, thresholdMs: number, limit = defaultSlowSpanLimit): SlowSpan[] {
  if (!Number.isFinite(thresholdMs) || thresholdMs < 0) {
    throw new InvalidFieldError("threshold_ms", `must be >= 0, got ${thresholdMs}`);
  }
  if (!Number.isInteger(limit) || limit < 1) throw new InvalidFieldError("limit", `must be an integer >= 1, got ${limit}`);
  const thresholdNs = msToNs(thresholdMs);
  const slow = trace.spans.filter((span) => span.endTimeNs - span.startTimeNs > thresholdNs);
  if (slow.length === 0) return [];
  const critical = new Set(criticalPath(trace).spans.map((entry) => entry.span.spanId));
  const total = Number(trace.totalDurationNs);
  return slow
    .map((span) => {
      const durationNs = span.endTimeNs - span.startTimeNs;
      const selfNs = selfTimeNs(span, trace.childrenById.get(span.spanId) ?? []);
      return {
        span,
        durationNs,
        durationMs: nsToMs(durationNs),
        traceShare: total === 0 ? 0 : Number(durationNs) / total,
        selfNs,
        selfMs: nsToMs(selfNs),
        onCriticalPath: critical.has(span.spanId),
      };
    })
    .sort(bySlowest)
    .slice(0, limit);
}
