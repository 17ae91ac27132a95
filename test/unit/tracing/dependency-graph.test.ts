import { describe, expect, it } from "vitest";
import { dependencyGraph, graphOfCalls, type DependencyNode } from "../../../server/core/tracing/dependency-graph.js";
import { spans, type SpanSpec } from "./builders.js";

/** The graph as `caller → callee×count` strings. */
function edges(graph: readonly DependencyNode[]): string[] {
  return graph.flatMap((node) =>
    node.downstream.length === 0
      ? [`${node.serviceName} (leaf)`]
      : node.downstream.map((edge) => `${node.serviceName} → ${edge.serviceName}×${edge.callCount}`),
  );
}

describe("dependencyGraph", () => {
  it.each<[string, SpanSpec[], string[]]>([
    [
      "counts a call for each parent→child edge across services",
      [
        { id: "r", start: 0, end: 9, service: "gateway" },
        { id: "a", parent: "r", start: 1, end: 2, service: "cart" },
        { id: "b", parent: "r", start: 3, end: 4, service: "cart" },
        { id: "c", parent: "a", start: 1, end: 2, service: "db" },
      ],
      ["cart → db×1", "db (leaf)", "gateway → cart×2"],
    ],
    [
      "ignores calls within one service",
      [
        { id: "r", start: 0, end: 9, service: "gateway" },
        { id: "a", parent: "r", start: 1, end: 2, service: "gateway" },
      ],
      [],
    ],
    [
      "ignores spans whose parent is absent",
      [{ id: "a", parent: "gone", start: 1, end: 2, service: "cart" }],
      [],
    ],
    [
      "keeps a path through a same-service hop",
      [
        { id: "r", start: 0, end: 9, service: "gateway" },
        { id: "a", parent: "r", start: 1, end: 8, service: "gateway" },
        { id: "b", parent: "a", start: 2, end: 3, service: "mail" },
      ],
      ["gateway → mail×1", "mail (leaf)"],
    ],
    [
      "lists downstream services by name",
      [
        { id: "r", start: 0, end: 9, service: "gateway" },
        { id: "z", parent: "r", start: 1, end: 2, service: "zeta" },
        { id: "a", parent: "r", start: 1, end: 2, service: "alpha" },
      ],
      ["alpha (leaf)", "gateway → alpha×1", "gateway → zeta×1", "zeta (leaf)"],
    ],
    [
      "counts async producer → consumer edges too",
      [
        { id: "p", start: 0, end: 1, service: "orders", kind: "producer" },
        { id: "c", parent: "p", start: 5, end: 6, service: "billing", kind: "consumer" },
      ],
      ["billing (leaf)", "orders → billing×1"],
    ],
  ])("%s", (_, specs, expected) => {
    expect(edges(dependencyGraph(spans(...specs)))).toEqual(expected);
  });

  it("sums calls across traces without mixing spans of equal ids", () => {
    const graph = dependencyGraph([
      ...spans({ id: "r", trace: "t1", start: 0, end: 9, service: "gateway" }, { id: "a", parent: "r", trace: "t1", start: 1, end: 2, service: "cart" }),
      ...spans({ id: "r", trace: "t2", start: 0, end: 9, service: "admin" }, { id: "a", parent: "r", trace: "t2", start: 1, end: 2, service: "cart" }),
      ...spans({ id: "r", trace: "t3", start: 0, end: 9, service: "gateway" }, { id: "a", parent: "r", trace: "t3", start: 1, end: 2, service: "cart" }),
    ]);
    expect(edges(graph)).toEqual(["admin → cart×1", "cart (leaf)", "gateway → cart×2"]);
  });

  it("accepts any iterable of spans", () => {
    function* generate() {
      yield* spans({ id: "r", start: 0, end: 9, service: "a" }, { id: "c", parent: "r", start: 1, end: 2, service: "b" });
    }
    expect(edges(dependencyGraph(generate()))).toEqual(["a → b×1", "b (leaf)"]);
  });
});

describe("graphOfCalls", () => {
  it("adds up counts of a pair, ignores calls within a service, and gives every endpoint a node", () => {
    expect(
      graphOfCalls([
        { parentService: "gateway", childService: "orders", callCount: 2 },
        { parentService: "orders", childService: "orders", callCount: 5 },
        { parentService: "gateway", childService: "orders", callCount: 3 },
        { parentService: "gateway", childService: "auth", callCount: 1 },
      ]),
    ).toEqual([
      { serviceName: "auth", downstream: [] },
      {
        serviceName: "gateway",
        downstream: [
          { serviceName: "auth", callCount: 1 },
          { serviceName: "orders", callCount: 5 },
        ],
      },
      { serviceName: "orders", downstream: [] },
    ]);
  });

  it("gives no nodes for no calls", () => {
    expect(graphOfCalls([])).toEqual([]);
  });
});
