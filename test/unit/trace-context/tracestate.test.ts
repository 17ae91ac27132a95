import { describe, expect, it } from "vitest";
import { parseTraceState, type TraceStateEntry } from "../../../client/trace-context.js";

/** `count` members `bar01=01`, `bar02=02`, ... as in the W3C test suite's member count test. */
function members(count: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    const n = String(i + 1).padStart(2, "0");
    return `bar${n}=${n}`;
  });
}

/** The entries of {@link members}. */
function entries(count: number): TraceStateEntry[] {
  return members(count).map((member): TraceStateEntry => [member.slice(0, 5), member.slice(6)]);
}

/** Every character the Level 1 grammar allows in a simple key, and after `@`. */
const ALL_SIMPLE_KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
/** Every character allowed in a value (0x20–0x7E but , and =), ending in a non-space. */
const ALL_VALUE_CHARS = Array.from({ length: 0x7e - 0x20 + 1 }, (_, i) => String.fromCharCode(0x20 + i))
  .filter((c) => c !== "," && c !== "=")
  .join("");

describe("parseTraceState accepts", () => {
  it.each<[string, string, TraceStateEntry[]]>([
    ["the spec's single-system example", "rojo=00f067aa0ba902b7", [["rojo", "00f067aa0ba902b7"]]],
    [
      "the spec's multiple-system example, keeping the order",
      "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
      [["rojo", "00f067aa0ba902b7"], ["congo", "t61rcWkgMzE"]],
    ],
    [
      "the spec's list example",
      "vendorname1=opaqueValue1,vendorname2=opaqueValue2",
      [["vendorname1", "opaqueValue1"], ["vendorname2", "opaqueValue2"]],
    ],
    ["a simple key from the spec", "my-tracing-system=1", [["my-tracing-system", "1"]]],
    ["a multi-tenant key (tenant fw529a3039, system dt)", "fw529a3039@dt=1", [["fw529a3039@dt", "1"]]],
    ["a multi-tenant key whose tenant starts with a digit", "123@xyz=1", [["123@xyz", "1"]]],
    ["an empty value", "", []],
    ["only whitespace and commas", " \t, ,\t", []],
    ["empty members between, before and after", ",foo=1,,bar=2,", [["foo", "1"], ["bar", "2"]]],
    [
      "spaces and tabs around commas",
      "foo=1 \t , \t bar=2, \t baz=3",
      [["foo", "1"], ["bar", "2"], ["baz", "3"]],
    ],
    ["leading and trailing OWS", "\t foo=1 \t", [["foo", "1"]]],
    ["a value's leading spaces, which are part of it", "foo=  bar", [["foo", "  bar"]]],
    ["inner spaces in a value", "foo=a b  c", [["foo", "a b  c"]]],
    ["every allowed simple key character", `${ALL_SIMPLE_KEY_CHARS}=1`, [[ALL_SIMPLE_KEY_CHARS, "1"]]],
    [
      "every allowed multi-tenant key character",
      `${ALL_SIMPLE_KEY_CHARS}@a-z0-9_-*/=1`,
      [[`${ALL_SIMPLE_KEY_CHARS}@a-z0-9_-*/`, "1"]],
    ],
    ["every allowed value character", `foo=${ALL_VALUE_CHARS}`, [["foo", ALL_VALUE_CHARS]]],
    ["a simple key of 256 characters", `${"z".repeat(256)}=1`, [["z".repeat(256), "1"]]],
    ["a tenant of 241 and a system of 14 characters", `${"t".repeat(241)}@${"v".repeat(14)}=1`, [[`${"t".repeat(241)}@${"v".repeat(14)}`, "1"]]],
    ["a value of 256 characters", `foo=${"v".repeat(256)}`, [["foo", "v".repeat(256)]]],
    ["32 members", members(32).join(","), entries(32)],
    [
      "32 members plus empty ones, which do not count",
      `,${members(32).join(", ,")},`,
      entries(32),
    ],
  ])("%s", (_name, value, expected) => {
    expect(parseTraceState(value)).toEqual(expected);
  });
});

describe("parseTraceState discards the whole list for", () => {
  it.each<[string, string]>([
    ["33 members", members(33).join(",")],
    ["a duplicated key with the same value", "foo=1,foo=1"],
    ["a duplicated key with different values", "foo=1,bar=2,foo=2"],
    ["a member without =", "foo=1,bar"],
    ["an uppercase key", "FOO=1"],
    ["a space inside the key", "foo =1"],
    ["a dot in the key", "foo.bar=1"],
    ["a simple key starting with a digit (Level 1 simple-key starts with lcalpha)", "1abc=1,bar=2"],
    ["a key starting with @", "@foo=1,bar=2"],
    ["a key ending with @", "foo@=1,bar=2"],
    ["a key with @@", "foo@@bar=1,bar=2"],
    ["a key with two @", "foo@bar@baz=1,bar=2"],
    ["a system id starting with a digit", "foo@1bar=1"],
    ["a simple key of 257 characters", `foo=1,${"z".repeat(257)}=1`],
    ["a tenant of 242 characters", `foo=1,${"t".repeat(242)}@v=1`],
    ["a system of 15 characters", `foo=1,t@${"v".repeat(15)}=1`],
    ["an empty key", "=1"],
    ["an empty value", "foo=,bar=3"],
    ["a value of spaces only", "foo=   ,bar=3"],
    ["an = in the value", "foo=bar=baz"],
    ["a tab inside the value", "foo=a\tb"],
    ["a value of 257 characters", `foo=${"v".repeat(257)}`],
    ["a non-ASCII value", "foo=caf\u00e9"],
    ["a DEL (0x7f) in the value", "foo=a\u007f"],
    ["a newline in a member", "foo=1\n,bar=2"],
  ])("%s", (_name, value) => {
    expect(parseTraceState(value)).toBeUndefined();
  });
});
