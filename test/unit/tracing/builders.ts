import { assembleTrace } from "../../../server/core/tracing/assembly.js";
import type { Span, SpanKind, SpanStatus, TraceTree } from "../../../server/core/tracing/model.js";

/** The error a call throws (shared with the registry tests). */
export { thrown } from "../registry/builders.js";

/** An arbitrary fixed "now" for tests, in epoch milliseconds. */
export const nowMs = 1_700_000_000_000;

/** Span times are offsets (ms) from this instant, in ns. */
export const t0Ns = 1_700_000_000_000_000_000n;

/** A trace id every builder uses unless told otherwise. */
export const traceA = "4bf92f3577b34da6a3ce929d0e0e4736";

/** Nanoseconds of `ms` milliseconds (fractions to the ns). */
export function ns(ms: number): bigint {
  return BigInt(Math.round(ms * 1e6));
}

/** A readable span for analysis tests: times in ms after {@link t0Ns}. */
export interface SpanSpec {
  readonly id: string;
  readonly parent?: string;
  readonly start: number;
  readonly end: number;
  readonly service?: string;
  readonly op?: string;
  readonly kind?: SpanKind;
  readonly status?: SpanStatus;
  readonly trace?: string;
}

/**
 * A span from a spec. Analysis code does not validate ids, so tests use
 * short readable ones (`root`, `a`, `b`).
 */
export function span(spec: SpanSpec): Span {
  return {
    spanId: spec.id,
    traceId: spec.trace ?? traceA,
    ...(spec.parent !== undefined ? { parentSpanId: spec.parent } : {}),
    serviceName: spec.service ?? "svc",
    operationName: spec.op ?? spec.id,
    kind: spec.kind ?? "server",
    status: spec.status ?? "ok",
    startTimeNs: t0Ns + ns(spec.start),
    endTimeNs: t0Ns + ns(spec.end),
    tags: {},
    logs: [],
  };
}

/** Spans from specs. */
export function spans(...specs: SpanSpec[]): Span[] {
  return specs.map(span);
}

/** An assembled trace from specs, at {@link nowMs}. */
export function trace(...specs: SpanSpec[]): TraceTree {
  return assembleTrace(spans(...specs), nowMs);
}

/**
 * A chain root → s1 → … → s(depth−1), span `i` lasting [i, 2·depth − i] ms,
 * so each child sits strictly inside its parent.
 */
export function deepChain(depth: number): Span[] {
  return Array.from({ length: depth }, (_, i) =>
    span({ id: `s${i}`, ...(i > 0 ? { parent: `s${i - 1}` } : {}), start: i, end: 2 * depth - i }),
  );
}

/**
 * A root of `width` children one after another: child `i` lasts
 * [2i + 1, 2i + 2] ms inside the root's [0, 2·width + 1], given in reverse
 * order so sorting is exercised.
 */
export function wideTree(width: number): Span[] {
  const children = Array.from({ length: width }, (_, i) =>
    span({ id: `c${String(i).padStart(5, "0")}`, parent: "root", start: 2 * i + 1, end: 2 * i + 2 }),
  );
  return [span({ id: "root", start: 0, end: 2 * width + 1 }), ...children.reverse()];
}

/** The span ids of `list`, in order. */
export function ids(list: readonly { readonly spanId: string }[]): string[] {
  return list.map((entry) => entry.spanId);
}
