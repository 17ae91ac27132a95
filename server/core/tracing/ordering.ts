/**
 * The orders in which the collector lists spans. Strings compare by UTF-16
 * code units (not locale), so every process orders the same way.
 */
import { compareText } from "../registry/ordering.js";
import type { Span } from "./model.js";

/** Code-unit order of two strings (the registry's, shared). */
export { compareText };

/** Start time ascending, then span_id ascending: the order of children and of a trace's spans. */
export function byStartThenId(a: Span, b: Span): number {
  return compareBigint(a.startTimeNs, b.startTimeNs) || compareText(a.spanId, b.spanId);
}

/** Comparator result of two bigints, ascending. */
export function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
