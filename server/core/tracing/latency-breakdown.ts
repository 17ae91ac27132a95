/**
 * Per-service latency of one trace (the seed's `latency_breakdown`).
 */
import { childIndex } from "./assembly.js";
import { isErrorStatus, nsToMs, type LatencyBreakdown, type Span } from "./model.js";
import { compareText } from "./ordering.js";
import { selfTimeNs } from "./self-time.js";

/**
 * One {@link LatencyBreakdown} per service among `spans`:
 * - `total`: the sum of the service's span durations;
 * - `self`: the sum of their self times — each span's duration minus the
 *   union of its children's intervals clipped to the span (see
 *   `selfTimeNs`), children of any service and kind;
 * - `errorRate`: ERROR and TIMEOUT spans over `spanCount`.
 *
 * Sums are exact in nanoseconds and floored to ms once. Ordered by
 * `totalMs` descending, then service name ascending.
 *
 * @param spans one trace's spans (root or not: orphans count for their own
 *   service, and as nobody's children)
 */
export function latencyBreakdown(spans: readonly Span[]): LatencyBreakdown[] {
  const childrenById = childIndex(spans);
  const byService = new Map<string, { totalNs: bigint; selfNs: bigint; spanCount: number; errors: number }>();
  for (const span of spans) {
    let entry = byService.get(span.serviceName);
    if (entry === undefined) {
      entry = { totalNs: 0n, selfNs: 0n, spanCount: 0, errors: 0 };
      byService.set(span.serviceName, entry);
    }
    entry.totalNs += span.endTimeNs - span.startTimeNs;
    entry.selfNs += selfTimeNs(span, childrenById.get(span.spanId) ?? []);
    entry.spanCount++;
    if (isErrorStatus(span.status)) entry.errors++;
  }
  const rows: LatencyBreakdown[] = [];
  for (const [serviceName, entry] of byService) {
    rows.push({
      serviceName,
      totalNs: entry.totalNs,
      totalMs: nsToMs(entry.totalNs),
      selfNs: entry.selfNs,
      selfMs: nsToMs(entry.selfNs),
      spanCount: entry.spanCount,
      errorRate: entry.errors / entry.spanCount,
    });
  }
  return rows.sort((a, b) => b.totalMs - a.totalMs || compareText(a.serviceName, b.serviceName));
}
