/**
 * The critical path of a trace: the chain of work that determines its
 * end-to-end latency, computed as Jaeger UI computes it
 * (`packages/jaeger-ui/src/components/TracePage/CriticalPath/`).
 *
 * Steps:
 * 1. Keep the blocking subtree of the root. A child whose kind is
 *    `producer` or `consumer` is non-blocking (asynchronous messaging: its
 *    parent does not wait for it) and is left out with all its descendants.
 *    The root itself is kept whatever its kind. (Jaeger UI's later versions
 *    narrow this to a CONSUMER child of a PRODUCER parent; we follow the
 *    rule both the issue and the earlier Jaeger version state.)
 * 2. Clip each kept child, parents before children, to its parent's
 *    already-clipped interval. A child entirely outside it is left out with
 *    its descendants: one that starts at or after the parent's end, or
 *    starts before the parent and ends at or before the parent's start.
 * 3. Walk back from the root's end. At each span, with a cursor that starts
 *    at the span's end:
 *    - entering a span, take its child that finishes last (ties: earliest
 *      start, then span_id); coming back to it from a child, take the child
 *      that finishes last *strictly before* the cursor;
 *    - with such a child, the span's time from that child's end to the
 *      cursor is critical; descend into the child, cursor at the child's end;
 *    - without one, the span's time from its start to the cursor is
 *      critical; return to the parent with the cursor at this span's start,
 *      or stop at the root.
 *    Zero-length sections are skipped. The strict comparison is what makes
 *    the walk end (the cursor strictly decreases at each return to a span,
 *    even past zero-length children); it also means a child ending exactly
 *    where the next one starts is not on the path, the parent is for that
 *    time (as in Jaeger).
 * 4. Report the sections in execution order (the reverse of the walk).
 *
 * Only the root's subtree is examined: other roots and orphans are not on
 * the path. The walk is a loop with explicit state, not recursion, and each
 * span's children are scanned with one forward-moving pointer (the cursor
 * only moves back), so a wide span costs a sort, not a quadratic scan.
 */
import { nsToMs, type Span, type SpanKind, type TraceTree } from "./model.js";
import { compareBigint, compareText } from "./ordering.js";

/** One critical section: a stretch of one span's own time on the critical path. */
export interface CriticalPathSegment {
  readonly span: Span;
  readonly startNs: bigint;
  readonly endNs: bigint;
  /** `endNs − startNs`, always > 0. */
  readonly criticalNs: bigint;
  /** {@link CriticalPathSegment.criticalNs} floored to ms. */
  readonly criticalMs: number;
}

/** One span on the critical path with the sum of its critical sections. */
export interface CriticalPathSpan {
  readonly span: Span;
  readonly criticalNs: bigint;
  /** {@link CriticalPathSpan.criticalNs} floored to ms. */
  readonly criticalMs: number;
}

/** A trace's critical path. */
export interface CriticalPath {
  /** Critical sections in execution order; a span may own several (before and after a child). */
  readonly segments: readonly CriticalPathSegment[];
  /** The spans on the path in order of their first section, each once. */
  readonly spans: readonly CriticalPathSpan[];
  /** The sum of all sections: the root's (clipped) duration. */
  readonly totalNs: bigint;
}

/**
 * Whether a child of this kind blocks its parent: every kind but `producer`
 * and `consumer`.
 */
export function isBlockingKind(kind: SpanKind): boolean {
  return kind !== "producer" && kind !== "consumer";
}

/** A span of the blocking subtree, clipped to its parent (steps 1 and 2). */
interface Node {
  readonly span: Span;
  readonly parent: Node | undefined;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly children: Node[];
  /** Children ordered for the walk; set when first entered. */
  byEnd?: Node[];
  /** Index into `byEnd` of the next candidate. */
  next: number;
}

/**
 * The critical path of `trace` (module comment, steps 1–4).
 */
export function criticalPath(trace: Pick<TraceTree, "root" | "childrenById">): CriticalPath {
  const root = blockingTree(trace.root, trace.childrenById);
  const segments = walk(root).reverse();
  const bySpan = new Map<string, { span: Span; criticalNs: bigint }>();
  let totalNs = 0n;
  for (const segment of segments) {
    totalNs += segment.criticalNs;
    const entry = bySpan.get(segment.span.spanId);
    if (entry === undefined) bySpan.set(segment.span.spanId, { span: segment.span, criticalNs: segment.criticalNs });
    else entry.criticalNs += segment.criticalNs;
  }
  const spans = [...bySpan.values()].map(({ span, criticalNs }) => ({ span, criticalNs, criticalMs: nsToMs(criticalNs) }));
  return { segments, spans, totalNs };
}

/** Steps 1 and 2: the root's blocking subtree, each child clipped to its parent. */
function blockingTree(rootSpan: Span, childrenById: ReadonlyMap<string, readonly Span[]>): Node {
  const root: Node = {
    span: rootSpan,
    parent: undefined,
    startNs: rootSpan.startTimeNs,
    endNs: rootSpan.endTimeNs,
    children: [],
    next: 0,
  };
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const parent = stack.pop()!;
    for (const child of childrenById.get(parent.span.spanId) ?? []) {
      if (!isBlockingKind(child.kind)) continue;
      const clipped = clip(child, parent);
      if (clipped === undefined) continue;
      parent.children.push(clipped);
      stack.push(clipped);
    }
  }
  return root;
}

/**
 * `child` clipped to `parent`'s interval, or undefined when entirely outside
 * it: starting at or after the parent's end, or (starting before the
 * parent) ending at or before the parent's start.
 */
function clip(child: Span, parent: Node): Node | undefined {
  if (child.startTimeNs >= parent.startNs) {
    if (child.startTimeNs >= parent.endNs) return undefined;
  } else if (child.endTimeNs <= parent.startNs) {
    return undefined;
  }
  return {
    span: child,
    parent,
    startNs: child.startTimeNs > parent.startNs ? child.startTimeNs : parent.startNs,
    endNs: child.endTimeNs < parent.endNs ? child.endTimeNs : parent.endNs,
    children: [],
    next: 0,
  };
}

/** Step 3: the critical sections, last first. */
function walk(root: Node): CriticalPathSegment[] {
  const sections: CriticalPathSegment[] = [];
  let node = root;
  let cursor = root.endNs;
  let entering = true;
  for (;;) {
    const child = lastFinishing(node, cursor, entering);
    if (child !== undefined) {
      push(sections, node.span, child.endNs, cursor);
      node = child;
      cursor = child.endNs;
      entering = true;
      continue;
    }
    push(sections, node.span, node.startNs, cursor);
    if (node.parent === undefined) return sections;
    cursor = node.startNs;
    node = node.parent;
    entering = false;
  }
}

/**
 * The child finishing last (entering), or last strictly before `cursor`
 * (returning). Candidates are ordered by end descending, then start, then
 * span_id; as the cursor only moves back, a skipped candidate stays skipped.
 */
function lastFinishing(node: Node, cursor: bigint, entering: boolean): Node | undefined {
  node.byEnd ??= [...node.children].sort(
    (a, b) =>
      compareBigint(b.endNs, a.endNs) ||
      compareBigint(a.span.startTimeNs, b.span.startTimeNs) ||
      compareText(a.span.spanId, b.span.spanId),
  );
  const candidates = node.byEnd;
  if (entering) return candidates[0];
  while (node.next < candidates.length && candidates[node.next]!.endNs >= cursor) node.next++;
  return candidates[node.next];
}

function push(sections: CriticalPathSegment[], span: Span, startNs: bigint, endNs: bigint): void {
  if (startNs === endNs) return;
  const criticalNs = endNs - startNs;
  sections.push({ span, startNs, endNs, criticalNs, criticalMs: nsToMs(criticalNs) });
}
