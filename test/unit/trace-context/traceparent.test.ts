import { describe, expect, it } from "vitest";
import { parseTraceParent } from "../../../client/trace-context.js";

/** The spec's "Examples of HTTP traceparent Headers" trace and parent ids. */
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";
/** The W3C test suite's ids (test/test.py). */
const SUITE_TRACE_ID = "12345678901234567890123456789012";
const SUITE_PARENT_ID = "1234567890123456";

describe("parseTraceParent accepts", () => {
  it.each<[string, string, { traceId: string; parentId: string; sampled: boolean; traceFlags: number }]>([
    [
      "the spec's example when the caller sampled",
      `00-${TRACE_ID}-${PARENT_ID}-01`,
      { traceId: TRACE_ID, parentId: PARENT_ID, sampled: true, traceFlags: 0x01 },
    ],
    [
      "the spec's example when the caller did not sample",
      `00-${TRACE_ID}-${PARENT_ID}-00`,
      { traceId: TRACE_ID, parentId: PARENT_ID, sampled: false, traceFlags: 0x00 },
    ],
    [
      "the spec's Congo example",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      { traceId: "0af7651916cd43dd8448eb211c80319c", parentId: "b7ad6b7169203331", sampled: true, traceFlags: 0x01 },
    ],
    [
      "the random-trace-id flag (02) alone, which is kept and is not sampled",
      `00-${TRACE_ID}-${PARENT_ID}-02`,
      { traceId: TRACE_ID, parentId: PARENT_ID, sampled: false, traceFlags: 0x02 },
    ],
    [
      "sampled and random (03)",
      `00-${TRACE_ID}-${PARENT_ID}-03`,
      { traceId: TRACE_ID, parentId: PARENT_ID, sampled: true, traceFlags: 0x03 },
    ],
    [
      "all flags set (ff), keeping only the known bits",
      `00-${TRACE_ID}-${PARENT_ID}-ff`,
      { traceId: TRACE_ID, parentId: PARENT_ID, sampled: true, traceFlags: 0x03 },
    ],
    [
      "reserved flags without the sampled bit (04), which read as not sampled",
      `00-${TRACE_ID}-${PARENT_ID}-04`,
      { traceId: TRACE_ID, parentId: PARENT_ID, sampled: false, traceFlags: 0x00 },
    ],
    [
      "future version cc of exactly 55 characters",
      `cc-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-01`,
      { traceId: SUITE_TRACE_ID, parentId: SUITE_PARENT_ID, sampled: true, traceFlags: 0x01 },
    ],
    [
      "future version cc with extra fields after a dash",
      `cc-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-01-what-the-future-will-be-like`,
      { traceId: SUITE_TRACE_ID, parentId: SUITE_PARENT_ID, sampled: true, traceFlags: 0x01 },
    ],
    [
      "future version 01 with an empty extra field and unknown flags",
      `01-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-f8-`,
      { traceId: SUITE_TRACE_ID, parentId: SUITE_PARENT_ID, sampled: false, traceFlags: 0x00 },
    ],
    [
      "future version fe, the highest allowed",
      `fe-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-00-x`,
      { traceId: SUITE_TRACE_ID, parentId: SUITE_PARENT_ID, sampled: false, traceFlags: 0x00 },
    ],
    [
      "a leading space (OWS)",
      ` 00-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-01`,
      { traceId: SUITE_TRACE_ID, parentId: SUITE_PARENT_ID, sampled: true, traceFlags: 0x01 },
    ],
    [
      "leading and trailing tabs and spaces (OWS)",
      `\t 00-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-01 \t`,
      { traceId: SUITE_TRACE_ID, parentId: SUITE_PARENT_ID, sampled: true, traceFlags: 0x01 },
    ],
  ])("%s", (_name, value, expected) => {
    expect(parseTraceParent(value)).toEqual({ ...expected, traceState: [] });
  });
});

describe("parseTraceParent rejects", () => {
  const rest = `${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-01`;
  it.each<[string, string]>([
    ["an empty value", ""],
    ["only whitespace", " \t "],
    ["version ff", `ff-${rest}`],
    ["version 00 with a trailing character", `00-${rest}.`],
    ["version 00 with a trailing dash", `00-${rest}-`],
    ["version 00 with future fields", `00-${rest}-what-the-future-will-be-like`],
    ["a future version with something other than a dash after the flags", `cc-${rest}.what-the-future-will-be-like`],
    ["a future version shorter than 55 characters", `cc-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-1`],
    ["a future version with an all-zero trace-id", `cc-${"0".repeat(32)}-${SUITE_PARENT_ID}-01-x`],
    ["a future version with an uppercase parent-id", `cc-${SUITE_TRACE_ID}-ABCDEF7890123456-01-x`],
    ["an uppercase version", `CC-${rest}`],
    ["uppercase hex in the trace-id", `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ["one uppercase hex digit in the trace-id", `00-4BF92f3577b34da6a3ce929d0e0e4736-${PARENT_ID}-01`],
    ["uppercase hex in the parent-id", `00-${TRACE_ID}-00F067AA0BA902B7-01`],
    ["uppercase hex in the flags", `00-${TRACE_ID}-${PARENT_ID}-0A`],
    ["an all-zero trace-id", `00-${"0".repeat(32)}-${SUITE_PARENT_ID}-01`],
    ["an all-zero parent-id", `00-${SUITE_TRACE_ID}-${"0".repeat(16)}-01`],
    ["a one-digit version", `0-${rest}`],
    ["a three-digit version", `000-${rest}`],
    ["a four-digit version", `0000-${rest}`],
    ["illegal characters in the version", `.0-${rest}`],
    ["a 31-digit trace-id", `00-${SUITE_TRACE_ID.slice(1)}-${SUITE_PARENT_ID}-01`],
    ["a 33-digit trace-id", `00-${SUITE_TRACE_ID}3-${SUITE_PARENT_ID}-01`],
    ["a non-hex trace-id", `00-.2345678901234567890123456789012-${SUITE_PARENT_ID}-01`],
    ["a trace-id with g", `00-g2345678901234567890123456789012-${SUITE_PARENT_ID}-01`],
    ["a 15-digit parent-id", `00-${SUITE_TRACE_ID}-123456789012345-01`],
    ["a 17-digit parent-id", `00-${SUITE_TRACE_ID}-12345678901234567-01`],
    ["a non-hex parent-id", `00-${SUITE_TRACE_ID}-123456789012345.-01`],
    ["one-digit flags", `00-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-1`],
    ["three-digit flags", `00-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-001`],
    ["non-hex flags", `00-${SUITE_TRACE_ID}-${SUITE_PARENT_ID}-.0`],
    ["underscores instead of dashes", `00_${SUITE_TRACE_ID}_${SUITE_PARENT_ID}_01`],
    ["two values joined by a comma", `00-${rest}, 00-${rest}`],
    ["a trailing newline, which is not OWS", `00-${rest}\n`],
  ])("%s", (_name, value) => {
    expect(parseTraceParent(value)).toBeUndefined();
  });
});
