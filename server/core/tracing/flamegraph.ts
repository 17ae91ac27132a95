/**
 * Flame graphs of a trace (the seed's `trace_to_flamegraph`): a JSON tree in
 * the `{name, value, children}` shape of d3-flame-graph, and folded-stack
 * text (`a;b;c 42` lines) for Brendan Gregg's flamegraph.pl, speedscope and
 * inferno.
 *
 * Units: nanoseconds, as plain numbers (exact below 2^53 ns, about 104
 * days), so sub-millisecond spans stay visible.
 *
 * Frames are the root span's subtree (other roots and orphans are not
 * drawn), each named `service:operation`. A node's `value` is its span's
 * duration; a folded line's value is the span's self time (duration minus
 * the union of its children, see `selfTimeNs`), so flamegraph.pl draws a
 * frame as wide as its duration when its children run one after another
 * inside it. Children that run in parallel make a frame wider than its
 * duration (their times add up), as CPU flame graphs of threads do.
 */
import { subtreePreorder } from "./assembly.js";
import type { Span, TraceTree } from "./model.js";
import { compareText } from "./ordering.js";
import { selfTimeNs } from "./self-time.js";

/** One frame of the JSON flame graph. */
export interface FlamegraphNode {
  /** `service:operation`. */
  readonly name: string;
  /** The span's duration, ns. */
  readonly value: number;
  /** The span's self time, ns. */
  readonly selfValue: number;
  readonly spanId: string;
  /** Child spans' frames, by start time then span_id. */
  readonly children: readonly FlamegraphNode[];
}

/** A span's frame name: `service:operation`. */
export function frameName(span: Span): string {
  return `${span.serviceName}:${span.operationName}`;
}

/**
 * A frame name made safe for folded text: `;` separates frames and a line
 * break ends the record, so each becomes `_`.
 */
export function foldedFrameName(span: Span): string {
  return frameName(span).replace(/[;\r\n]/g, "_");
}

/**
 * The JSON flame graph of the root span's subtree. Built without recursion,
 * so any depth works (serialising a very deep tree is the caller's matter).
 */
export function traceToFlamegraph(trace: Pick<TraceTree, "root" | "childrenById">): FlamegraphNode {
  /** Each built frame's child list, still being filled. */
  const childLists = new Map<string, FlamegraphNode[]>();
  let top: FlamegraphNode | undefined;
  for (const span of subtreePreorder(trace.root, trace.childrenById)) {
    const children: FlamegraphNode[] = [];
    const node: FlamegraphNode = {
      name: frameName(span),
      value: Number(span.endTimeNs - span.startTimeNs),
      selfValue: Number(selfTimeNs(span, trace.childrenById.get(span.spanId) ?? [])),
      spanId: span.spanId,
      children,
    };
    childLists.set(span.spanId, children);
    const siblings = span === trace.root ? undefined : childLists.get(span.parentSpanId!);
    if (siblings === undefined) top = node;
    else siblings.push(node);
  }
  return top!;
}

/**
 * The folded stacks of the root span's subtree: one `frame;frame;… value`
 * line per distinct stack, value = the summed self time (ns) of the spans
 * with that stack, lines sorted by stack (code-unit order) and each ended
 * by `\n`. Stacks whose self time is 0 are left out, as stackcollapse
 * leaves out what took no samples. Text grows with depth × spans.
 */
export function foldedStacks(trace: Pick<TraceTree, "root" | "childrenById">): string {
  const stackOf = new Map<string, string>();
  const selfByStack = new Map<string, bigint>();
  for (const span of subtreePreorder(trace.root, trace.childrenById)) {
    const parentStack = span === trace.root ? undefined : stackOf.get(span.parentSpanId!);
    const stack = parentStack === undefined ? foldedFrameName(span) : `${parentStack};${foldedFrameName(span)}`;
    stackOf.set(span.spanId, stack);
    const self = selfTimeNs(span, trace.childrenById.get(span.spanId) ?? []);
    if (self > 0n) selfByStack.set(stack, (selfByStack.get(stack) ?? 0n) + self);
  }
  return [...selfByStack.keys()]
    .sort(compareText)
    .map((stack) => `${stack} ${selfByStack.get(stack)!}\n`)
    .join("");
}
