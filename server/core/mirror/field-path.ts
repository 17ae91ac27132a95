/**
 * Field paths into JSON values: how diffs name a field and how
 * `ignore_fields` select fields.
 *
 * Syntax: object keys joined by `.` (`a.b`), array elements as `[2]`
 * (`a.b[2].c`). A key that is empty or holds anything but letters, digits,
 * `_` and `-` is written as a JSON string in brackets: `a["x.y"]`,
 * `["a b"].c`. A pattern (an `ignore_fields` entry) may also use `[*]`: any
 * element of an array (`items[*].id`).
 *
 * Patterns are anchored at the top level: `id` is the top-level key `id`, not
 * an `id` anywhere; `meta.id` is the nested one. A pattern covers the field it
 * names and everything inside it.
 */
import { InvalidFieldError } from "../errors.js";
import { quote } from "./quote.js";

/**
 * One step of a path: a string is an object key, a number an array index.
 * In a {@link FieldPattern} the index {@link anyIndex} is the `[*]` wildcard.
 */
export type PathSegment = string | number;

/** The steps of a path, from the top level down. */
export type FieldPath = readonly PathSegment[];

/** The steps of an `ignore_fields` entry; may contain {@link anyIndex}. */
export type FieldPattern = readonly PathSegment[];

/** The `[*]` wildcard of a {@link FieldPattern}: any array index. */
export const anyIndex = -1;

/** Longest path text a pattern may have. */
export const maxFieldPathChars = 512;

const bareKeyPattern = /^[A-Za-z0-9_-]+$/;
const bareKeyChar = /[A-Za-z0-9_-]/;
const indexPattern = /^(?:0|[1-9][0-9]{0,8})$/;

/**
 * Renders a path (or pattern) in the syntax of the module comment. The top
 * level itself (no steps) renders as `""`.
 */
export function renderPath(path: FieldPath): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") {
      text += segment === anyIndex ? "[*]" : `[${segment}]`;
    } else if (bareKeyPattern.test(segment)) {
      text += text === "" ? segment : `.${segment}`;
    } else {
      text += `[${JSON.stringify(segment)}]`;
    }
  }
  return text;
}

/**
 * The field a path belongs to across requests: every array index replaced by
 * `[*]` (`items[3].price` → `items[*].price`). Diff analysis counts per field
 * key, once per request.
 */
export function fieldKey(path: FieldPath): string {
  return renderPath(path.map((segment) => (typeof segment === "number" ? anyIndex : segment)));
}

/**
 * Parses an `ignore_fields` entry (or any path) into its steps.
 *
 * @param field the request field the text came from, e.g. `ignore_fields[2]`
 * @throws InvalidFieldError naming `field` when the text is empty, longer than
 *   {@link maxFieldPathChars}, or not in the syntax of the module comment
 */
export function parseFieldPath(text: string, field: string): FieldPattern {
  if (text === "") throw new InvalidFieldError(field, "must not be empty");
  if (text.length > maxFieldPathChars) {
    throw new InvalidFieldError(field, `must be at most ${maxFieldPathChars} characters, got ${text.length}`);
  }
  const segments: PathSegment[] = [];
  let at = 0;
  const fail = (rule: string): never => {
    throw new InvalidFieldError(field, `${rule} at offset ${at} of ${quote(text)}`);
  };
  const readKey = (): void => {
    const start = at;
    while (at < text.length && bareKeyChar.test(text[at]!)) at++;
    if (at === start) fail('must be a key of letters, digits, _ and - (or ["…"] for others)');
    segments.push(text.slice(start, at));
  };
  const readBracket = (): void => {
    at++; // "["
    if (text[at] === '"') {
      const start = at;
      at++;
      while (at < text.length && text[at] !== '"') at += text[at] === "\\" ? 2 : 1;
      if (at >= text.length) fail("must close the quoted key");
      at++;
      let key: unknown;
      try {
        key = JSON.parse(text.slice(start, at));
      } catch {
        at = start;
        fail("must be a JSON string in brackets");
      }
      segments.push(key as string);
    } else if (text[at] === "*") {
      at++;
      segments.push(anyIndex);
    } else {
      const start = at;
      while (at < text.length && text[at] !== "]") at++;
      const digits = text.slice(start, at);
      if (!indexPattern.test(digits)) {
        at = start;
        fail("must be an array index (0, 1, …), * or a quoted key in brackets");
      }
      segments.push(Number(digits));
    }
    if (text[at] !== "]") fail('must close "[" with "]"');
    at++;
  };

  if (text[0] === "[") readBracket();
  else readKey();
  while (at < text.length) {
    if (text[at] === ".") {
      at++;
      readKey();
    } else if (text[at] === "[") {
      readBracket();
    } else {
      fail('must continue with ".key" or "[…]"');
    }
  }
  return segments;
}
