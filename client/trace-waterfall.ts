/**
 * A trace as a terminal waterfall, the way Jaeger's timeline draws it: one
 * line per span in tree order (children under their parent, by start time),
 * each with its offset from the trace's start, a bar placed and sized on a
 * shared time axis, its duration, and its indented `service:operation`.
 *
 * Pure: it turns a `TraceTree` into lines and knows nothing of terminals;
 * the CLI picks the bar width ({@link waterfallBarWidth} for a TTY, a fixed
 * width otherwise).
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { SpanStatus, type Span, type TraceTree } from "../gen/latticeforge/tracing/v1/tracing_pb.js";

/** Options for {@link renderWaterfall}. */
export interface WaterfallOptions {
  /** Columns of the timeline between its two `|` borders; at least 1. */
  readonly barWidth: number;
  /** Append each span's id (`[00f067aa0ba902b7]`) to its name. Default false. */
  readonly spanIds?: boolean;
}

/** Narrowest bar {@link waterfallBarWidth} returns, however long the names. */
export const minimumBarWidth = 20;

/** Spaces of indentation per tree level. */
const indentPerLevel = 2;

/** One span placed in the tree: its depth and why it is top-level, if it is. */
interface Placed {
  readonly span: Span;
  readonly depth: number;
  /** Set for a span whose parent is not in the trace. */
  readonly missingParent?: string;
}

/** The columns of one span line, before the bar is drawn. */
interface Row {
  readonly placed: Placed;
  readonly offset: string;
  readonly duration: string;
  readonly label: string;
}

/**
 * Renders `tree` as lines: a summary line, a column header, then one line
 * per span:
 *
 * ```
 * trace 4bf92f3577b34da6a3ce929d0e0e4736  120.000 ms  4 spans  4 services  1 error
 * OFFSET MS  TIMELINE                    DURATION MS  SPAN
 *     0.000  |████████████████████████|      120.000  frontend:GET /checkout
 *     5.000  | ███████                |       35.000    cart:GetCart
 * ```
 *
 * Times are milliseconds with microsecond digits, measured from the
 * earliest span start; the axis spans max(end) − min(start), as the trace's
 * total duration does. Order: every span whose parent is not in the trace
 * (the root, then orphans, which are marked) starts a subtree, in start
 * order; children follow their parent depth-first, by start time then
 * span_id (the order of `tree.spans`). Spans with status ERROR or TIMEOUT
 * end with `✗ error` / `✗ timeout`.
 */
export function renderWaterfall(tree: TraceTree, options: WaterfallOptions): string[] {
  const barWidth = Math.max(1, Math.floor(options.barWidth));
  const { startNs, totalNs } = axis(tree.spans);
  const rows = layout(tree, startNs, options.spanIds === true);
  const offsetWidth = Math.max("OFFSET MS".length, ...rows.map((r) => r.offset.length));
  const durationWidth = Math.max("DURATION MS".length, ...rows.map((r) => r.duration.length));

  // The bar with its borders, or the header word when that is wider.
  const timelineWidth = Math.max(barWidth + 2, "TIMELINE".length);

  const lines = [summary(tree, totalNs)];
  lines.push(`${"OFFSET MS".padStart(offsetWidth)}  ${"TIMELINE".padEnd(timelineWidth)}  ${"DURATION MS".padStart(durationWidth)}  SPAN`);
  for (const row of rows) {
    const { span } = row.placed;
    const bar = `|${drawBar(nsOf(span.startTime) - startNs, nsOf(span.endTime) - startNs, totalNs, barWidth)}|`;
    lines.push(`${row.offset.padStart(offsetWidth)}  ${bar.padEnd(timelineWidth)}  ${row.duration.padStart(durationWidth)}  ${row.label}`);
  }
  return lines;
}

/**
 * The widest bar that keeps every span line of `tree` within `columns`
 * terminal columns, but never narrower than {@link minimumBarWidth} (long
 * names then wrap rather than squeeze the timeline away).
 */
export function waterfallBarWidth(tree: TraceTree, columns: number, options: Omit<WaterfallOptions, "barWidth"> = {}): number {
  const { startNs } = axis(tree.spans);
  const rows = layout(tree, startNs, options.spanIds === true);
  const offsetWidth = Math.max("OFFSET MS".length, ...rows.map((r) => r.offset.length));
  const durationWidth = Math.max("DURATION MS".length, ...rows.map((r) => r.duration.length));
  const labelWidth = Math.max("SPAN".length, ...rows.map((r) => r.label.length));
  // offset, two spaces, "|", bar, "|", two spaces, duration, two spaces, label
  const fixed = offsetWidth + 2 + 2 + 2 + durationWidth + 2 + labelWidth;
  return Math.max(minimumBarWidth, Math.floor(columns) - fixed);
}

/**
 * Milliseconds of `ns` nanoseconds with three decimals (microseconds),
 * truncated: `formatMs(1_234_567n)` is `"1.234"`.
 */
export function formatMs(ns: bigint): string {
  const sign = ns < 0n ? "-" : "";
  const us = (ns < 0n ? -ns : ns) / 1000n;
  return `${sign}${us / 1000n}.${String(us % 1000n).padStart(3, "0")}`;
}

/** A span's duration in nanoseconds, from its exact start and end times. */
export function spanDurationNs(span: Span): bigint {
  return nsOf(span.endTime) - nsOf(span.startTime);
}

function nsOf(timestamp: Timestamp | undefined): bigint {
  return timestamp === undefined ? 0n : timestamp.seconds * 1_000_000_000n + BigInt(timestamp.nanos);
}

/** The time axis: earliest start and max(end) − min(start). */
function axis(spans: readonly Span[]): { startNs: bigint; totalNs: bigint } {
  if (spans.length === 0) return { startNs: 0n, totalNs: 0n };
  let start = nsOf(spans[0]!.startTime);
  let end = nsOf(spans[0]!.endTime);
  for (const span of spans) {
    const s = nsOf(span.startTime);
    const e = nsOf(span.endTime);
    if (s < start) start = s;
    if (e > end) end = e;
  }
  return { startNs: start, totalNs: end - start };
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function summary(tree: TraceTree, totalNs: bigint): string {
  const parts = [
    `trace ${tree.traceId}`,
    `${formatMs(totalNs)} ms`,
    plural(tree.spans.length, "span"),
    plural(tree.serviceCount, "service"),
    plural(tree.errorCount, "error"),
  ];
  if (tree.orphanSpanIds.length > 0) parts.push(plural(tree.orphanSpanIds.length, "orphan"));
  return parts.join("  ");
}

/**
 * The spans in display order with their depth. Top-level spans are those
 * without a parent in the trace; a depth-first walk (explicit stack, so a
 * very deep trace cannot overflow the call stack) places their subtrees.
 * Spans the walk cannot reach (a parent cycle in bad data) are appended at
 * depth 0 so that no span is ever left out.
 */
function place(tree: TraceTree): Placed[] {
  const ids = new Set(tree.spans.map((s) => s.spanId));
  const children = new Map<string, Span[]>();
  const tops: Placed[] = [];
  for (const span of tree.spans) {
    if (span.parentSpanId === "") tops.push({ span, depth: 0 });
    else if (!ids.has(span.parentSpanId)) tops.push({ span, depth: 0, missingParent: span.parentSpanId });
    else {
      const list = children.get(span.parentSpanId);
      if (list === undefined) children.set(span.parentSpanId, [span]);
      else list.push(span);
    }
  }
  const placed: Placed[] = [];
  const seen = new Set<string>();
  const walk = (top: Placed): void => {
    const stack: Placed[] = [top];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (seen.has(next.span.spanId)) continue;
      seen.add(next.span.spanId);
      placed.push(next);
      const kids = children.get(next.span.spanId) ?? [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push({ span: kids[i]!, depth: next.depth + 1 });
    }
  };
  for (const top of tops) walk(top);
  for (const span of tree.spans) if (!seen.has(span.spanId)) walk({ span, depth: 0 });
  return placed;
}

function layout(tree: TraceTree, startNs: bigint, spanIds: boolean): Row[] {
  return place(tree).map((placed) => {
    const { span } = placed;
    const startOffset = nsOf(span.startTime) - startNs;
    const duration = spanDurationNs(span);
    let label = `${" ".repeat(placed.depth * indentPerLevel)}${span.serviceName}:${span.operationName}`;
    if (spanIds) label += ` [${span.spanId}]`;
    if (span.status === SpanStatus.ERROR) label += "  ✗ error";
    else if (span.status === SpanStatus.TIMEOUT) label += "  ✗ timeout";
    if (placed.missingParent !== undefined) label += `  (orphan: parent ${placed.missingParent} not in trace)`;
    return { placed, offset: formatMs(startOffset), duration: formatMs(duration), label };
  });
}

/**
 * The bar of the interval [from, to] (ns after the trace start) on an axis
 * of `totalNs` drawn in `width` cells: both edges rounded to the nearest
 * cell boundary, at least one cell so that short spans stay visible. A
 * zero-length trace puts every span in the first cell.
 */
function drawBar(from: bigint, to: bigint, totalNs: bigint, width: number): string {
  const cells = BigInt(width);
  const cell = (t: bigint): number => (totalNs <= 0n ? 0 : Number((2n * t * cells + totalNs) / (2n * totalNs)));
  const first = Math.min(width - 1, Math.max(0, cell(from)));
  const last = Math.min(width, Math.max(first + 1, cell(to)));
  return " ".repeat(first) + "█".repeat(last - first) + " ".repeat(width - last);
}
