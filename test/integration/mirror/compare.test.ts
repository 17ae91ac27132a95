import { create, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiffKind, MirrorService, type CompareResponsesResponse } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { callOptions as opts, jsonValue, type MirrorClient } from "../../fixtures/mirror.js";
import { rpcError } from "../../fixtures/tracing.js";

/** A diff as [path, kind, production, shadow] with the Values as JSON (undefined when unset). */
type DiffRow = [string, DiffKind, JsonValue | undefined, JsonValue | undefined];

function rows(response: CompareResponsesResponse): DiffRow[] {
  const json = (value: Value | undefined): JsonValue | undefined => (value === undefined ? undefined : jsonOfMessage(value));
  return response.diffs.map((d) => [d.path, d.kind, json(d.production), json(d.shadow)]);
}

/** A Value message as plain JSON. */
function jsonOfMessage(value: Value): JsonValue {
  switch (value.kind.case) {
    case "nullValue":
      return null;
    case "structValue":
      return Object.fromEntries(Object.entries(value.kind.value.fields).map(([k, v]) => [k, jsonOfMessage(v)]));
    case "listValue":
      return value.kind.value.values.map(jsonOfMessage);
    case undefined:
      throw new Error("a Value without a kind");
    default:
      return value.kind.value;
  }
}

const { VALUE_CHANGED, TYPE_CHANGED, MISSING, EXTRA, ARRAY_LENGTH } = DiffKind;

describe.each(["grpc", "connect"] as const)("CompareResponses over %s", (transport) => {
  let server: TestControlPlane;
  let mirror: MirrorClient;
  beforeAll(async () => {
    server = await startTestControlPlane();
    mirror = transport === "grpc" ? server.grpc(MirrorService) : server.http(MirrorService, { useJson: true });
  });
  afterAll(() => server.stop());

  const compare = (production: JsonValue | undefined, shadow: JsonValue | undefined, ignoreFields: string[] = []) =>
    mirror.compareResponses(
      {
        ...(production !== undefined ? { production: jsonValue(production) } : {}),
        ...(shadow !== undefined ? { shadow: jsonValue(shadow) } : {}),
        ignoreFields,
      },
      opts,
    );

  it("finds no diff between equal responses, whatever their key order", async () => {
    const response = await compare({ a: 1, b: { c: [1, { d: null }], e: "x" } }, { b: { e: "x", c: [1, { d: null }] }, a: 1 });
    expect(response).toMatchObject({ hasDiff: false, diffSummary: "", diffs: [] });
  });

  it("finds no diff when neither side is set (both compare as null)", async () => {
    expect((await compare(undefined, undefined)).hasDiff).toBe(false);
    expect((await compare(null, undefined)).hasDiff).toBe(false);
  });

  it.each<[string, JsonValue | undefined, JsonValue | undefined, string[], DiffRow[], string]>([
    ["a nested value change", { a: { b: { c: 1 } } }, { a: { b: { c: 2 } } }, [], [["a.b.c", VALUE_CHANGED, 1, 2]], "1 field differs: a.b.c (value_changed 1 → 2)"],
    ["a type change, not looked into", { a: { b: 1 } }, { a: [1] }, [], [["a", TYPE_CHANGED, { b: 1 }, [1]]], "1 field differs: a (type_changed object → array)"],
    ["a number against its string", { n: 1 }, { n: "1" }, [], [["n", TYPE_CHANGED, 1, "1"]], "1 field differs: n (type_changed number → string)"],
    ["null against a value", { v: null }, { v: 0 }, [], [["v", TYPE_CHANGED, null, 0]], "1 field differs: v (type_changed null → number)"],
    ["a missing and an extra key", { gone: 1, same: true }, { same: true, added: "x" }, [], [["added", EXTRA, undefined, "x"], ["gone", MISSING, 1, undefined]], "2 fields differ: added (extra), gone (missing)"],
    ["an array length change, comparing the common prefix", { items: [1, 2, 3] }, { items: [1, 5] }, [], [["items", ARRAY_LENGTH, 3, 2], ["items[1]", VALUE_CHANGED, 2, 5]], "2 fields differ: items (array_length 3 → 2), items[1] (value_changed 2 → 5)"],
    ["array elements by index, indices ascending", { l: Array.from({ length: 12 }, (_, i) => i) }, { l: Array.from({ length: 12 }, (_, i) => (i === 2 || i === 10 ? -i : i)) }, [], [["l[2]", VALUE_CHANGED, 2, -2], ["l[10]", VALUE_CHANGED, 10, -10]], "2 fields differ: l[2] (value_changed 2 → -2), l[10] (value_changed 10 → -10)"],
    ["keys that need quoting", { "a b": { "x.y": 1 } }, { "a b": { "x.y": 2 } }, [], [['["a b"]["x.y"]', VALUE_CHANGED, 1, 2]], '1 field differs: ["a b"]["x.y"] (value_changed 1 → 2)'],
    ["a key named __proto__ like any other", JSON.parse('{"__proto__": 1}') as JsonValue, JSON.parse('{"__proto__": 2}') as JsonValue, [], [["__proto__", VALUE_CHANGED, 1, 2]], "1 field differs: __proto__ (value_changed 1 → 2)"],
    ["the top level itself", { a: 1 }, undefined, [], [["", TYPE_CHANGED, { a: 1 }, null]], "1 field differs: (top level) (type_changed object → null)"],
    ["a nested ignore path, leaving the top-level key of the same name", { generatedAt: 1, meta: { generatedAt: 1, v: 1 } }, { generatedAt: 2, meta: { generatedAt: 2, v: 1 } }, ["meta.generatedAt"], [["generatedAt", VALUE_CHANGED, 1, 2]], "1 field differs: generatedAt (value_changed 1 → 2)"],
    ["[*] over every array element", { items: [{ id: 1, p: 5 }, { id: 2, p: 6 }] }, { items: [{ id: 9, p: 5 }, { id: 8, p: 7 }] }, ["items[*].id"], [["items[1].p", VALUE_CHANGED, 6, 7]], "1 field differs: items[1].p (value_changed 6 → 7)"],
    ["an ignored subtree with everything inside", { meta: { a: 1, b: [1, 2] }, x: 1 }, { meta: { a: 2 }, x: 1 }, ["meta"], [], ""],
    ["an ignore path on a missing key", { a: 1, debug: "x" }, { a: 1 }, ["debug"], [], ""],
    ["an index-specific ignore path", { l: [1, 2] }, { l: [3, 4] }, ["l[0]"], [["l[1]", VALUE_CHANGED, 2, 4]], "1 field differs: l[1] (value_changed 2 → 4)"],
  ])("reports %s", async (_, production, shadow, ignore, expected, summary) => {
    const response = await compare(production, shadow, ignore);
    expect(rows(response)).toEqual(expected);
    expect(response.hasDiff).toBe(expected.length > 0);
    expect(response.diffSummary).toBe(summary);
  });

  it("summarises many diffs with the first five and a count of the rest", async () => {
    const production = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, i]));
    const shadow = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, i + 100]));
    const response = await compare(production, shadow);
    expect(response.diffs).toHaveLength(8);
    expect(response.diffSummary).toBe(
      "8 fields differ: k0 (value_changed 0 → 100), k1 (value_changed 1 → 101), k2 (value_changed 2 → 102), k3 (value_changed 3 → 103), k4 (value_changed 4 → 104), and 3 more",
    );
  });

  it("refuses a bad ignore_fields entry naming it", async () => {
    const error = await rpcError(compare({ a: 1 }, { a: 2 }, ["ok", ""]));
    expect(error).toEqual({ code: Code.InvalidArgument, message: "ignore_fields[1] must not be empty" });
  });
});

// Protobuf JSON cannot carry NaN or a Value without a kind: over the binary gRPC wire only.
describe("CompareResponses with values JSON cannot hold", () => {
  let server: TestControlPlane;
  let mirror: MirrorClient;
  beforeAll(async () => {
    server = await startTestControlPlane();
    mirror = server.grpc(MirrorService);
  });
  afterAll(() => server.stop());

  it("refuses NaN or a Value without a kind as INVALID_ARGUMENT naming the side", async () => {
    const nan = create(ValueSchema, { kind: { case: "structValue", value: { fields: { x: create(ValueSchema, { kind: { case: "numberValue", value: Number.NaN } }) } } } });
    expect(await rpcError(mirror.compareResponses({ production: nan, shadow: jsonValue({ x: 1 }) }, opts))).toEqual({
      code: Code.InvalidArgument,
      message: 'production["x"] must be a finite number, got NaN',
    });
    expect(await rpcError(mirror.compareResponses({ production: jsonValue(1), shadow: create(ValueSchema, {}) }, opts))).toEqual({
      code: Code.InvalidArgument,
      message: "shadow must hold a value (a google.protobuf.Value with no kind set)",
    });
  });
});
