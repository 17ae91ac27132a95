/**
 * Trace assembly: from one trace's spans (as the store loads them, in any
 * order) to a {@link TraceTree} with its root, orphans and child index.
 *
 * Nothing here recurses: trees are walked with explicit stacks, so a
 * 10,000-deep chain of spans costs memory, never call-stack depth.
 */
import { FailedPreconditionError } from "../errors.js";
import { isErrorStatus, nsToMs, type Span, type TraceSummary, type TraceTree } from "./model.js";
import { byStartThenId } from "./ordering.js";

/**
 * The root span: the one without a parent_span_id. When several spans have
 * none, the earliest start wins, then the smallest span_id, so every reader
 * picks the same root. Undefined while the trace has no such span.
 */
export function findRoot(spans: readonly Span[]): Span | undefined {
  let root: Span | undefined;
  for (const span of spans) {
    if (span.parentSpanId !== undefined) continue;
    if (root === undefined || byStartThenId(span, root) < 0) root = span;
  }
  return root;
}

/** The spans whose parent is `parentSpanId`, ordered by start time, then span_id. */
export function children(spans: readonly Span[], parentSpanId: string): Span[] {
  return spans.filter((span) => span.parentSpanId === parentSpanId).sort(byStartThenId);
}

/**
 * The spans whose parent_span_id names no span in `spans` (their parent has
 * not arrived, or never will), ordered by start time, then span_id.
 */
export function orphanSpans(spans: readonly Span[]): Span[] {
  const ids = new Set(spans.map((span) => span.spanId));
  return spans
    .filter((span) => span.parentSpanId !== undefined && !ids.has(span.parentSpanId))
    .sort(byStartThenId);
}

/**
 * Children by parent span_id, each list ordered by start time, then
 * span_id. Spans without a parent appear in no list.
 */
export function childIndex(spans: readonly Span[]): Map<string, Span[]> {
  const index = new Map<string, Span[]>();
  for (const span of spans) {
    if (span.parentSpanId === undefined) continue;
    const siblings = index.get(span.parentSpanId);
    if (siblings === undefined) index.set(span.parentSpanId, [span]);
    else siblings.push(span);
  }
  for (const siblings of index.values()) siblings.sort(byStartThenId);
  return index;
}

/**
 * The trace-level figures of one trace's spans, root or not: total duration
 * is `max(end) − min(start)` over all spans; ERROR and TIMEOUT spans count
 * as errors.
 *
 * @param spans one trace's spans, at least one
 * @throws Error when `spans` is empty or mixes trace ids (a caller bug, not
 *   a request error)
 */
export function summarizeTrace(spans: readonly Span[]): TraceSummary {
  const first = spans[0];
  if (first === undefined) throw new Error("summarizeTrace needs at least one span");
  let minStart = first.startTimeNs;
  let maxEnd = first.endTimeNs;
  let errorCount = 0;
  const services = new Set<string>();
  for (const span of spans) {
    if (span.traceId !== first.traceId) {
      throw new Error(`spans of traces ${first.traceId} and ${span.traceId} cannot be assembled together`);
    }
    if (span.startTimeNs < minStart) minStart = span.startTimeNs;
    if (span.endTimeNs > maxEnd) maxEnd = span.endTimeNs;
    if (isErrorStatus(span.status)) errorCount++;
    services.add(span.serviceName);
  }
  const root = findRoot(spans);
  const totalDurationNs = maxEnd - minStart;
  return {
    traceId: first.traceId,
    spanCount: spans.length,
    ...(root !== undefined ? { root } : {}),
    totalDurationNs,
    totalDurationMs: nsToMs(totalDurationNs),
    serviceCount: services.size,
    errorCount,
  };
}

/**
 * Assembles one trace's spans into a {@link TraceTree}.
 *
 * Span ids are unique within a trace (the ingest rules drop duplicates);
 * should `spans` repeat one anyway, its first occurrence is kept.
 *
 * @param spans one trace's spans, in any order
 * @param nowMs stamped as `assembledAtMs`
 * @throws FailedPreconditionError when no span is a root yet (or `spans` is empty)
 */
export function assembleTrace(spans: readonly Span[], nowMs: number): TraceTree {
  const spanById = new Map<string, Span>();
  for (const span of spans) if (!spanById.has(span.spanId)) spanById.set(span.spanId, span);
  const unique = spanById.size === spans.length ? [...spans] : [...spanById.values()];
  unique.sort(byStartThenId);
  if (unique.length === 0) throw new FailedPreconditionError("trace has no spans yet");
  const summary = summarizeTrace(unique);
  const root = summary.root;
  if (root === undefined) {
    throw new FailedPreconditionError(
      `trace ${summary.traceId} has no root span yet: each of its ${unique.length} spans has a parent_span_id`,
    );
  }
  return {
    ...summary,
    root,
    spans: unique,
    orphans: unique.filter((span) => span.parentSpanId !== undefined && !spanById.has(span.parentSpanId)),
    spanById,
    childrenById: childIndex(unique),
    assembledAtMs: nowMs,
  };
}

/**
 * `top` and its descendants in depth-first pre-order, children in start
 * order: every span comes after its parent. Iterative, so depth is bounded
 * by memory only; a span is visited once even if ids form a cycle below.
 */
export function subtreePreorder(top: Span, childrenById: ReadonlyMap<string, readonly Span[]>): Span[] {
  const order: Span[] = [];
  const seen = new Set<string>();
  const stack: Span[] = [top];
  while (stack.length > 0) {
    const span = stack.pop()!;
    if (seen.has(span.spanId)) continue;
    seen.add(span.spanId);
    order.push(span);
    const kids = childrenById.get(span.spanId);
    if (kids === undefined) continue;
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]!);
  }
  return order;
}
