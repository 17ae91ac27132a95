/**
 * Self time: the part of a span's duration not covered by its children, as
 * Jaeger's trace statistics compute it (`computeSelfTime` in jaeger-ui's
 * `TraceStatistics/tableValues`): children are clipped to the span's
 * interval, and time covered by several overlapping children is subtracted
 * once (the union of the clipped intervals), so self time is never negative.
 *
 * Every child counts, whatever its kind: an async PRODUCER/CONSUMER child
 * still covers the parent's time in this view (unlike on the critical path).
 */
import type { Span } from "./model.js";
import { compareBigint } from "./ordering.js";

/**
 * Nanoseconds of `span` covered by none of `children`.
 *
 * Steps: clip each child to `[span.start, span.end]` (dropping empty
 * results), sort the clipped intervals by start, sweep them merging
 * overlaps, and subtract the merged length from the duration.
 *
 * @param children the span's children, in any order; intervals outside the
 *   span contribute nothing
 */
export function selfTimeNs(span: Span, children: readonly Span[]): bigint {
  const duration = span.endTimeNs - span.startTimeNs;
  if (children.length === 0) return duration;
  return duration - coveredNs(span.startTimeNs, span.endTimeNs, children);
}

/** Length of the union of `intervals` clipped to `[from, to]`. */
function coveredNs(from: bigint, to: bigint, intervals: readonly Span[]): bigint {
  const clipped: [bigint, bigint][] = [];
  for (const child of intervals) {
    const start = child.startTimeNs > from ? child.startTimeNs : from;
    const end = child.endTimeNs < to ? child.endTimeNs : to;
    if (end > start) clipped.push([start, end]);
  }
  clipped.sort((a, b) => compareBigint(a[0], b[0]));
  let covered = 0n;
  let run: [bigint, bigint] | undefined;
  for (const interval of clipped) {
    if (run === undefined || interval[0] > run[1]) {
      if (run !== undefined) covered += run[1] - run[0];
      run = interval;
    } else if (interval[1] > run[1]) {
      run[1] = interval[1];
    }
  }
  if (run !== undefined) covered += run[1] - run[0];
  return covered;
}
