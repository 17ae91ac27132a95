import { describe, expect, it } from "vitest";
import { assembleTrace } from "../../../server/core/tracing/assembly.js";
import { foldedStacks, traceToFlamegraph, type FlamegraphNode } from "../../../server/core/tracing/flamegraph.js";
import { deepChain, nowMs, trace, type SpanSpec } from "./builders.js";

const ms = 1_000_000;

describe("traceToFlamegraph", () => {
  const graph = traceToFlamegraph(
    trace(
      { id: "r", start: 0, end: 10, service: "gateway", op: "GET /" },
      { id: "b", parent: "r", start: 5, end: 9, service: "cart", op: "load" },
      { id: "a", parent: "r", start: 1, end: 4, service: "auth", op: "check" },
      { id: "g", parent: "a", start: 2, end: 3, service: "db", op: "select" },
      { id: "o", parent: "gone", start: 0, end: 50, service: "lost", op: "x" },
    ),
  );

  it("builds {name, value, children} with service:operation names and ns values", () => {
    const shape = (node: FlamegraphNode): unknown => ({
      name: node.name,
      value: node.value,
      children: node.children.map(shape),
    });
    expect(shape(graph)).toEqual({
      name: "gateway:GET /",
      value: 10 * ms,
      children: [
        { name: "auth:check", value: 3 * ms, children: [{ name: "db:select", value: 1 * ms, children: [] }] },
        { name: "cart:load", value: 4 * ms, children: [] },
      ],
    });
  });

  it.each<[string, (g: FlamegraphNode) => unknown, unknown]>([
    ["gives each frame its self time", (g) => [g.selfValue, g.children[0]?.selfValue], [3 * ms, 2 * ms]],
    ["keeps span ids", (g) => [g.spanId, g.children[1]?.spanId], ["r", "b"]],
  ])("%s", (_, pick, expected) => {
    expect(pick(graph)).toEqual(expected);
  });

  it("builds a 10,000-deep tree without recursion", () => {
    let node: FlamegraphNode | undefined = traceToFlamegraph(assembleTrace(deepChain(10_000), nowMs));
    let depth = 0;
    while (node !== undefined) {
      depth++;
      node = node.children[0];
    }
    expect(depth).toBe(10_000);
  });
});

describe("foldedStacks", () => {
  it.each<[string, SpanSpec[], string]>([
    ["a lone span is one line of its duration", [{ id: "r", start: 0, end: 2, service: "a", op: "x" }], "a:x 2000000\n"],
    [
      "children one after another: self time per stack, sorted",
      [
        { id: "r", start: 0, end: 10, service: "gw", op: "in" },
        { id: "a", parent: "r", start: 1, end: 4, service: "auth", op: "check" },
        { id: "b", parent: "r", start: 5, end: 9, service: "cart", op: "load" },
      ],
      "gw:in 3000000\ngw:in;auth:check 3000000\ngw:in;cart:load 4000000\n",
    ],
    [
      "overlapping children: the parent's self time subtracts their union once",
      [
        { id: "r", start: 0, end: 10, service: "gw", op: "in" },
        { id: "a", parent: "r", start: 1, end: 6, service: "s", op: "a" },
        { id: "b", parent: "r", start: 4, end: 8, service: "s", op: "b" },
      ],
      "gw:in 3000000\ngw:in;s:a 5000000\ngw:in;s:b 4000000\n",
    ],
    [
      "siblings with the same name merge into one line",
      [
        { id: "r", start: 0, end: 10, service: "gw", op: "in" },
        { id: "a", parent: "r", start: 1, end: 3, service: "db", op: "q" },
        { id: "b", parent: "r", start: 4, end: 8, service: "db", op: "q" },
      ],
      "gw:in 4000000\ngw:in;db:q 6000000\n",
    ],
    [
      "a frame wholly covered by its children has no line of its own",
      [
        { id: "r", start: 0, end: 10, service: "gw", op: "in" },
        { id: "a", parent: "r", start: 0, end: 10, service: "db", op: "q" },
      ],
      "gw:in;db:q 10000000\n",
    ],
    [
      "semicolons and line breaks in names become underscores",
      [{ id: "r", start: 0, end: 1, service: "a;b", op: "GET\n/x" }],
      "a_b:GET_/x 1000000\n",
    ],
    [
      "orphans and other roots are left out",
      [
        { id: "r", start: 0, end: 1, service: "gw", op: "in" },
        { id: "o", parent: "gone", start: 0, end: 5, service: "lost", op: "x" },
        { id: "z", start: 3, end: 9, service: "other", op: "root" },
      ],
      "gw:in 1000000\n",
    ],
    ["a zero-length trace folds to nothing", [{ id: "r", start: 1, end: 1 }], ""],
  ])("%s", (_, specs, expected) => {
    expect(foldedStacks(trace(...specs))).toBe(expected);
  });

  it("matches the flamegraph.pl / speedscope line grammar", () => {
    const text = foldedStacks(
      trace(
        { id: "r", start: 0, end: 10, service: "gw", op: "GET /cart items" },
        { id: "a", parent: "r", start: 1, end: 4, service: "auth", op: "check" },
      ),
    );
    for (const line of text.trimEnd().split("\n")) expect(line).toMatch(/^[^;\n]+(;[^;\n]+)* \d+$/);
  });
});
