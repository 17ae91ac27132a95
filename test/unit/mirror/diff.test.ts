import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import { compareResponses, diffFieldKeys, type FieldDiff } from "../../../server/core/mirror/diff.js";
import { anyIndex, fieldKey, parseFieldPath, renderPath, type FieldPath } from "../../../server/core/mirror/field-path.js";
import type { JsonValue } from "../../../server/core/mirror/model.js";
import { thrown } from "./builders.js";

/** The diffs as [path, kind] pairs. */
function pairs(production: JsonValue, shadow: JsonValue, ignore: string[] = []): [string, string][] {
  return compareResponses(production, shadow, ignore).diffs.map((diff) => [diff.path, diff.kind]);
}

describe("field paths", () => {
  it.each<[FieldPath, string]>([
    [["a", "b", 2, "c"], "a.b[2].c"],
    [["x.y"], '["x.y"]'],
    [["a", "x.y", "b"], 'a["x.y"].b'],
    [[0, "a"], "[0].a"],
    [["a", ""], 'a[""]'],
    [["a b", 'q"'], '["a b"]["q\\""]'],
    [["items", anyIndex, "id"], "items[*].id"],
    [[], ""],
  ])("renders %j as %s", (path, text) => {
    expect(renderPath(path)).toBe(text);
  });

  it.each<[string, FieldPath]>([
    ["a.b[2].c", ["a", "b", 2, "c"]],
    ['a["x.y"]', ["a", "x.y"]],
    ['["x.y"].z', ["x.y", "z"]],
    ["items[*].id", ["items", anyIndex, "id"]],
    ["[3]", [3]],
    ['a["\\u0041"]', ["a", "A"]],
  ])("parses %s", (text, path) => {
    expect(parseFieldPath(text, "f")).toEqual(path);
  });

  it.each<[string, string]>([
    ["", "must not be empty"],
    ["a.", 'must be a key of letters, digits, _ and - (or ["…"] for others) at offset 2 of "a."'],
    [".a", 'must be a key of letters, digits, _ and - (or ["…"] for others) at offset 0 of ".a"'],
    ["a[01]", 'must be an array index (0, 1, …), * or a quoted key in brackets at offset 2 of "a[01]"'],
    ["a[1", 'must close "[" with "]" at offset 3 of "a[1"'],
    ['a["x', 'must close the quoted key at offset 4 of "a[\\"x"'],
    ["a b", 'must continue with ".key" or "[…]" at offset 1 of "a b"'],
    ["a.*", 'must be a key of letters, digits, _ and - (or ["…"] for others) at offset 2 of "a.*"'],
  ])("rejects %j", (text, reason) => {
    const error = thrown(() => parseFieldPath(text, "ignore_fields[0]"));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).reason).toBe(reason);
  });

  it("generalises indices into a field key", () => {
    expect(fieldKey(["items", 3, "tags", 0])).toBe("items[*].tags[*]");
  });
});

describe("compareResponses", () => {
  it.each<[string, JsonValue, JsonValue, [string, string][]]>([
    ["equal objects", { a: 1, b: [1, { c: "x" }] }, { b: [1, { c: "x" }], a: 1 }, []],
    ["a changed number", { a: 1 }, { a: 2 }, [["a", "value_changed"]]],
    ["a changed string deep inside", { a: { b: [{ c: "x" }] } }, { a: { b: [{ c: "y" }] } }, [["a.b[0].c", "value_changed"]]],
    ["a changed boolean", { ok: true }, { ok: false }, [["ok", "value_changed"]]],
    ["number to string", { a: 1 }, { a: "1" }, [["a", "type_changed"]]],
    ["null to object", { a: null }, { a: {} }, [["a", "type_changed"]]],
    ["array to object, not looked into", { a: [1] }, { a: { 0: 1 } }, [["a", "type_changed"]]],
    ["a key missing from the shadow", { a: 1, b: 2 }, { a: 1 }, [["b", "missing"]]],
    ["an extra key in the shadow", { a: 1 }, { a: 1, z: { deep: 1 } }, [["z", "extra"]]],
    ["a longer array: length and common prefix", { a: [1, 2] }, { a: [1, 3, 4] }, [["a", "array_length"], ["a[1]", "value_changed"]]],
    ["a shorter array", { a: [1, 2, 3] }, { a: [1] }, [["a", "array_length"]]],
    ["arrays at the top level", [1, 2], [1, 5], [["[1]", "value_changed"]]],
    ["different top-level types", { a: 1 }, [1], [["", "type_changed"]]],
    ["scalars at the top level", "x", "y", [["", "value_changed"]]],
    ["a key needing quotes", { "x.y": 1 }, { "x.y": 2 }, [['["x.y"]', "value_changed"]]],
    ["0 and -0 are equal", { a: 0 }, { a: -0 }, []],
    ["1 and 1.0 are equal", { a: 1 }, { a: 1.0 }, []],
    ["a __proto__ key is an ordinary key", JSON.parse('{"__proto__": 1}') as JsonValue, JSON.parse('{"__proto__": 2}') as JsonValue, [["__proto__", "value_changed"]]],
  ])("%s", (_, production, shadow, expected) => {
    expect(pairs(production, shadow)).toEqual(expected);
  });

  it("orders diffs parent first, keys sorted, indices numeric, whatever the key order", () => {
    const production = { z: 1, a: { y: 1, b: 1 }, list: Array.from({ length: 12 }, (_, i) => i) };
    const shadow = { a: { b: 2, y: 2 }, z: 2, list: Array.from({ length: 11 }, (_, i) => (i === 2 || i === 10 ? -1 : i)) };
    expect(pairs(production, shadow)).toEqual([
      ["a.b", "value_changed"],
      ["a.y", "value_changed"],
      ["list", "array_length"],
      ["list[2]", "value_changed"],
      ["list[10]", "value_changed"],
      ["z", "value_changed"],
    ]);
    expect(pairs(shadow, production).map(([path]) => path)).toEqual(["a.b", "a.y", "list", "list[2]", "list[10]", "z"]);
  });

  it("records both sides of each diff", () => {
    const { diffs } = compareResponses({ a: 1, b: [1, 2], m: "x" }, { a: "1", b: [1], n: "y" });
    expect(diffs).toEqual<FieldDiff[]>([
      { path: "a", field: "a", kind: "type_changed", production: 1, shadow: "1" },
      { path: "b", field: "b", kind: "array_length", production: 2, shadow: 1 },
      { path: "m", field: "m", kind: "missing", production: "x" },
      { path: "n", field: "n", kind: "extra", shadow: "y" },
    ]);
  });

  it.each<[string, string[], [string, string][]]>([
    ["a top-level key", ["ts"], [["meta.ts", "value_changed"], ["items[0].id", "value_changed"], ["items[1].id", "value_changed"]]],
    ["a nested path", ["meta.ts"], [["items[0].id", "value_changed"], ["items[1].id", "value_changed"], ["ts", "value_changed"]]],
    ["a subtree", ["meta"], [["items[0].id", "value_changed"], ["items[1].id", "value_changed"], ["ts", "value_changed"]]],
    ["a wildcard over array elements", ["items[*].id"], [["meta.ts", "value_changed"], ["ts", "value_changed"]]],
    ["one index only", ["items[1].id"], [["items[0].id", "value_changed"], ["meta.ts", "value_changed"], ["ts", "value_changed"]]],
    ["several patterns", ["ts", "meta.ts", "items"], []],
    ["a pattern matching nothing", ["nope.x"], [["items[0].id", "value_changed"], ["items[1].id", "value_changed"], ["meta.ts", "value_changed"], ["ts", "value_changed"]]],
  ])("ignores %s", (_, ignore, expected) => {
    const production = { ts: 1, meta: { ts: 1 }, items: [{ id: "a", n: 1 }, { id: "b", n: 2 }] };
    const shadow = { ts: 2, meta: { ts: 2 }, items: [{ id: "x", n: 1 }, { id: "y", n: 2 }] };
    expect(pairs(production, shadow, ignore).sort()).toEqual(expected.sort());
  });

  it("ignores missing and extra keys under an ignored path, but not a wildcard's array length", () => {
    expect(pairs({ a: { x: 1 }, l: [{ id: 1 }] }, { a: { y: 1 }, l: [{ id: 2 }, { id: 3 }] }, ["a", "l[*].id"])).toEqual([["l", "array_length"]]);
  });

  it("does not apply a wildcard to object keys", () => {
    expect(pairs({ m: { "0": 1 } }, { m: { "0": 2 } }, ["m[*]"])).toEqual([["m.0", "value_changed"]]);
  });

  it("summarises the first differing paths, deterministically", () => {
    const comparison = compareResponses({ a: 1, b: "x", c: [1], d: {}, e: 1, f: 1, g: 1 }, { a: 2, b: 1, c: [1, 2], e: 2, f: 2, g: 2, h: 0 });
    expect(comparison.summary).toBe(
      '8 fields differ: a (value_changed 1 → 2), b (type_changed string → number), c (array_length 1 → 2), d (missing), e (value_changed 1 → 2), and 3 more',
    );
    expect(compareResponses({ a: 1 }, { a: 1 })).toEqual({ hasDiff: false, diffs: [], truncated: false });
    expect(compareResponses(1, "1").summary).toBe("1 field differs: (top level) (type_changed number → string)");
  });

  it("stops at maxDiffs and says so", () => {
    const production = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${String(i).padStart(2, "0")}`, i]));
    const shadow = Object.fromEntries(Object.keys(production).map((key) => [key, -1]));
    const comparison = compareResponses(production, shadow, [], { maxDiffs: 10, summaryPaths: 2 });
    expect(comparison.diffs).toHaveLength(10);
    expect(comparison.truncated).toBe(true);
    expect(comparison.summary).toBe("more than 10 fields differ: k00 (value_changed 0 → -1), k01 (value_changed 1 → -1), and 8+ more");
  });

  it("names the ignore_fields entry that does not parse", () => {
    const error = thrown(() => compareResponses({}, {}, ["ok", "a[x]"]));
    expect((error as InvalidFieldError).field).toBe("ignore_fields[1]");
  });

  it("collects each diff's generalised field once, sorted", () => {
    const { diffs } = compareResponses({ items: [{ p: 1 }, { p: 2 }], a: 1 }, { items: [{ p: 3 }, { p: 4 }], a: 2 });
    expect(diffFieldKeys(diffs)).toEqual(["a", "items[*].p"]);
  });
});
