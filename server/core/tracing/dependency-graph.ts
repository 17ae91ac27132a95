/**
 * The service dependency graph (the seed's `dependency_graph`): which
 * services call which, counted from parent→child span edges that cross a
 * service boundary, as Jaeger's dependency jobs count them.
 */
import type { Span } from "./model.js";
import { compareText } from "./ordering.js";

/** One downstream service of a caller, with the number of calls seen. */
export interface DependencyEdge {
  readonly serviceName: string;
  /** Parent→child span pairs from the caller to this service. */
  readonly callCount: number;
}

/** A service and the services it calls. */
export interface DependencyNode {
  readonly serviceName: string;
  /** Ordered by service name; empty for a service only ever called. */
  readonly downstream: readonly DependencyEdge[];
}

/**
 * The dependency graph of `spans`, which may come from many traces: a
 * parent is looked up by (trace_id, parent_span_id), so equal span ids in
 * different traces never meet. Each span whose parent is present and of
 * another service counts one call parent service → span service; calls
 * within a service and spans whose parent is absent count nothing.
 *
 * Every service at either end of an edge gets a node; nodes are ordered by
 * service name.
 */
export function dependencyGraph(spans: Iterable<Span>): DependencyNode[] {
  const all = [...spans];
  const serviceOf = new Map<string, string>();
  for (const span of all) serviceOf.set(spanKey(span.traceId, span.spanId), span.serviceName);
  const calls: ServiceCallCount[] = [];
  for (const span of all) {
    if (span.parentSpanId === undefined) continue;
    const caller = serviceOf.get(spanKey(span.traceId, span.parentSpanId));
    if (caller === undefined || caller === span.serviceName) continue;
    calls.push({ parentService: caller, childService: span.serviceName, callCount: 1 });
  }
  return graphOfCalls(calls);
}

/** Calls from one service into another, counted (possibly in several entries). */
export interface ServiceCallCount {
  readonly parentService: string;
  readonly childService: string;
  readonly callCount: number;
}

/**
 * The dependency graph of counted calls (e.g. counted by the store): counts
 * of the same pair add up; calls within a service count nothing. Every
 * service at either end of an edge gets a node; nodes and their downstream
 * lists are ordered by service name.
 */
export function graphOfCalls(calls: Iterable<ServiceCallCount>): DependencyNode[] {
  const graph = new Map<string, Map<string, number>>();
  for (const { parentService, childService, callCount } of calls) {
    if (parentService === childService) continue;
    let downstream = graph.get(parentService);
    if (downstream === undefined) {
      downstream = new Map();
      graph.set(parentService, downstream);
    }
    downstream.set(childService, (downstream.get(childService) ?? 0) + callCount);
    if (!graph.has(childService)) graph.set(childService, new Map());
  }
  return [...graph.keys()].sort(compareText).map((serviceName) => ({
    serviceName,
    downstream: [...graph.get(serviceName)!]
      .sort(([a], [b]) => compareText(a, b))
      .map(([callee, callCount]) => ({ serviceName: callee, callCount })),
  }));
}

/** A map key for (trace_id, span_id); ids are hex, so `/` cannot occur in them. */
function spanKey(traceId: string, spanId: string): string {
  return `${traceId}/${spanId}`;
}
