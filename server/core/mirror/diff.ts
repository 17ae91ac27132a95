/**
 * Field-level diff of two JSON responses, like Diffy's: the differences are
 * flattened to paths (see `field-path.ts`) with a kind, never a text diff.
 *
 * Algorithm (one pre-order walk of both values at once):
 * 1. a path covered by an ignore pattern is skipped with everything inside;
 * 2. a key only in production is `missing`, only in the shadow `extra`;
 * 3. different JSON types (null, boolean, number, string, array, object)
 *    are `type_changed` and not looked into;
 * 4. arrays of different lengths are `array_length` at the array's path, and
 *    only their common prefix is compared element by element (the elements
 *    past it are not reported one by one);
 * 5. objects are walked key by key in sorted order (UTF-16 code units);
 * 6. equal types with different scalar values are `value_changed`
 *    (`0` and `-0` are equal, as in JSON).
 *
 * The output order is that walk's order: a parent before its children, keys
 * sorted, indices ascending. It depends only on the two values and the
 * patterns, never on key insertion order.
 */
import { anyIndex, fieldKey, parseFieldPath, renderPath, type FieldPattern, type PathSegment } from "./field-path.js";
import { compareText } from "../registry/ordering.js";
import type { JsonObject, JsonValue } from "./model.js";

/** What differs at a path. */
export type DiffKind = "value_changed" | "type_changed" | "missing" | "extra" | "array_length";

/** Every {@link DiffKind}, in the API's enum order. */
export const diffKinds: readonly DiffKind[] = ["value_changed", "type_changed", "missing", "extra", "array_length"];

/** The JSON type of a value, as `type_changed` reports it. */
export type JsonType = "null" | "boolean" | "number" | "string" | "array" | "object";

/** One difference between production and shadow. */
export interface FieldDiff {
  /** Where: `a.b[2].c`; `""` for the top level itself. */
  readonly path: string;
  /** The path with indices generalised (`a.b[*].c`): what analysis counts. */
  readonly field: string;
  readonly kind: DiffKind;
  /**
   * Production's side: the value (absent for `extra`), or the array's length
   * for `array_length`.
   */
  readonly production?: JsonValue;
  /** The shadow's side: the value (absent for `missing`), or the array's length for `array_length`. */
  readonly shadow?: JsonValue;
}

/** The result of {@link compareResponses} (the seed's `(has_diff, diff_summary)` and the diffs themselves). */
export interface ResponseComparison {
  readonly hasDiff: boolean;
  /** Short text naming the first differing paths; absent when nothing differs. */
  readonly summary?: string;
  /** In walk order (see the module comment), at most `maxDiffs`. */
  readonly diffs: readonly FieldDiff[];
  /** More diffs existed than `maxDiffs`; the walk stopped at the limit. */
  readonly truncated: boolean;
}

/** Options of {@link compareResponses}. */
export interface CompareOptions {
  /** Diffs to collect before stopping the walk; default 1000. */
  readonly maxDiffs?: number;
  /** Paths the summary names before `and N more`; default 5. */
  readonly summaryPaths?: number;
}

const defaultMaxDiffs = 1000;
const defaultSummaryPaths = 5;

/**
 * Compares a production response with a shadow response field by field.
 *
 * @param ignoreFields `ignore_fields` patterns (see `field-path.ts`)
 * @throws InvalidFieldError naming `ignore_fields[i]` for a pattern that does
 *   not parse
 * @example
 * compareResponses({ a: 1, t: 5 }, { a: 2, t: 6 }, ["t"]).summary
 * // "1 field differs: a (value_changed 1 → 2)"
 */
export function compareResponses(
  production: JsonValue,
  shadow: JsonValue,
  ignoreFields: readonly string[] = [],
  options: CompareOptions = {},
): ResponseComparison {
  const patterns = compileIgnoreFields(ignoreFields);
  const walk = new DiffWalk(options.maxDiffs ?? defaultMaxDiffs);
  walk.visit(production, shadow, [], patterns);
  const diffs = walk.diffs;
  if (diffs.length === 0) return { hasDiff: false, diffs, truncated: false };
  return {
    hasDiff: true,
    summary: summarize(diffs, walk.truncated, options.summaryPaths ?? defaultSummaryPaths),
    diffs,
    truncated: walk.truncated,
  };
}

/**
 * Parses `ignore_fields` entries.
 *
 * @param field the request field holding them, for messages
 * @throws InvalidFieldError naming `${field}[i]`
 */
export function compileIgnoreFields(ignoreFields: readonly string[], field = "ignore_fields"): FieldPattern[] {
  return ignoreFields.map((text, i) => parseFieldPath(text, `${field}[${i}]`));
}

/** The JSON type of a value. */
export function jsonType(value: JsonValue): JsonType {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value as "boolean" | "number" | "string" | "object";
}

/** The sorted, unique field keys (`FieldDiff.field`) of `diffs`: what a result records. */
export function diffFieldKeys(diffs: readonly FieldDiff[]): string[] {
  return [...new Set(diffs.map((diff) => diff.field))].sort(compareText);
}

/** Collects diffs up to a limit while walking two values. */
class DiffWalk {
  readonly diffs: FieldDiff[] = [];
  truncated = false;

  constructor(private readonly maxDiffs: number) {}

  /**
   * Compares the values at `path`. `undefined` stands for a key absent on
   * that side. `patterns` are the ignore patterns whose first `path.length`
   * steps match `path`.
   */
  visit(
    production: JsonValue | undefined,
    shadow: JsonValue | undefined,
    path: PathSegment[],
    patterns: readonly FieldPattern[],
  ): void {
    if (this.truncated) return;
    if (patterns.some((pattern) => pattern.length === path.length)) return;
    if (shadow === undefined) return this.add(path, "missing", production, undefined);
    if (production === undefined) return this.add(path, "extra", undefined, shadow);
    const type = jsonType(production);
    if (type !== jsonType(shadow)) return this.add(path, "type_changed", production, shadow);
    if (type === "array") {
      const left = production as readonly JsonValue[];
      const right = shadow as readonly JsonValue[];
      if (left.length !== right.length) this.add(path, "array_length", left.length, right.length);
      const common = Math.min(left.length, right.length);
      for (let i = 0; i < common; i++) this.visitChild(left[i], right[i], path, i, patterns);
      return;
    }
    if (type === "object") {
      const left = production as JsonObject;
      const right = shadow as JsonObject;
      for (const key of unionOfKeys(left, right)) {
        this.visitChild(
          Object.hasOwn(left, key) ? left[key] : undefined,
          Object.hasOwn(right, key) ? right[key] : undefined,
          path,
          key,
          patterns,
        );
      }
      return;
    }
    if (production !== shadow) this.add(path, "value_changed", production, shadow);
  }

  private visitChild(
    production: JsonValue | undefined,
    shadow: JsonValue | undefined,
    path: PathSegment[],
    segment: PathSegment,
    patterns: readonly FieldPattern[],
  ): void {
    const depth = path.length;
    const alive = patterns.filter((pattern) => {
      const step = pattern[depth];
      return step === segment || (step === anyIndex && typeof segment === "number");
    });
    path.push(segment);
    this.visit(production, shadow, path, alive);
    path.pop();
  }

  private add(
    path: readonly PathSegment[],
    kind: DiffKind,
    production: JsonValue | undefined,
    shadow: JsonValue | undefined,
  ): void {
    if (this.diffs.length >= this.maxDiffs) {
      this.truncated = true;
      return;
    }
    this.diffs.push({
      path: renderPath(path),
      field: fieldKey(path),
      kind,
      ...(production !== undefined ? { production } : {}),
      ...(shadow !== undefined ? { shadow } : {}),
    });
  }
}

function unionOfKeys(left: JsonObject, right: JsonObject): string[] {
  const keys = new Set(Object.keys(left));
  for (const key of Object.keys(right)) keys.add(key);
  return [...keys].sort(compareText);
}

/**
 * `N fields differ: a.b (value_changed 1 → 2), c (missing), and 3 more`.
 * Scalars are shown as JSON (cut to 32 characters), containers by type.
 */
function summarize(diffs: readonly FieldDiff[], truncated: boolean, shown: number): string {
  const count = truncated
    ? `more than ${diffs.length} fields differ`
    : `${diffs.length} ${diffs.length === 1 ? "field differs" : "fields differ"}`;
  const parts = diffs.slice(0, shown).map(describeDiff);
  const rest = diffs.length - parts.length;
  if (rest > 0) parts.push(`and ${rest}${truncated ? "+" : ""} more`);
  return `${count}: ${parts.join(", ")}`;
}

function describeDiff(diff: FieldDiff): string {
  const where = diff.path === "" ? "(top level)" : diff.path;
  switch (diff.kind) {
    case "missing":
    case "extra":
      return `${where} (${diff.kind})`;
    case "array_length":
      return `${where} (array_length ${String(diff.production)} → ${String(diff.shadow)})`;
    case "type_changed":
      return `${where} (type_changed ${jsonType(diff.production!)} → ${jsonType(diff.shadow!)})`;
    case "value_changed":
      return `${where} (value_changed ${brief(diff.production!)} → ${brief(diff.shadow!)})`;
  }
}

function brief(value: JsonValue): string {
  const text = JSON.stringify(value);
  return text.length > 32 ? `${text.slice(0, 31)}…` : text;
}
