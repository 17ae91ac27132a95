import { describe, expect, it } from "vitest";
import {
  childContext,
  extractTraceContext,
  formatTraceParent,
  formatTraceState,
  injectTraceContext,
  MAX_TRACE_STATE_MEMBERS,
  newTraceContext,
  TRACE_FLAG_RANDOM,
  TRACE_FLAG_SAMPLED,
  updateTraceState,
  type RandomBytes,
  type TraceContext,
  type TraceContextHeaders,
  type TraceStateEntry,
} from "../../../client/trace-context.js";

const TRACE_ID = "12345678901234567890123456789012";
const PARENT_ID = "1234567890123456";
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

/** The spec's Rojo context: traceparent and tracestate of its second hop. */
const ROJO: TraceContext = {
  traceId: "0af7651916cd43dd8448eb211c80319c",
  parentId: "00f067aa0ba902b7",
  sampled: true,
  traceFlags: TRACE_FLAG_SAMPLED,
  traceState: [
    ["rojo", "00f067aa0ba902b7"],
    ["congo", "t61rcWkgMzE"],
  ],
};

/** `count` entries `k00=v0`, `k01=v1`, ... */
function entries(count: number): TraceStateEntry[] {
  return Array.from({ length: count }, (_, i): TraceStateEntry => [`k${String(i).padStart(2, "0")}`, `v${i}`]);
}

/** A random source that returns the queued byte patterns in turn, each filled to the size asked. */
function scriptedRandom(...bytes: number[]): RandomBytes & { sizes: number[] } {
  const sizes: number[] = [];
  const random = (size: number): Uint8Array => {
    sizes.push(size);
    const next = bytes.shift();
    if (next === undefined) throw new Error("scriptedRandom ran out of bytes");
    return new Uint8Array(size).fill(next);
  };
  return Object.assign(random, { sizes });
}

/** Fetch headers that record which names were read. */
class RecordingHeaders extends Headers {
  readonly read: string[] = [];
  override get = (name: string): string | null => {
    this.read.push(name.toLowerCase());
    return Headers.prototype.get.call(this, name);
  };
}

function fetchHeaders(lines: Array<[string, string]>): Headers {
  const headers = new Headers();
  for (const [name, value] of lines) headers.append(name, value);
  return headers;
}

describe("extractTraceContext reads", () => {
  it.each<[string, TraceContextHeaders, Pick<TraceContext, "traceId" | "parentId"> & { traceState: TraceStateEntry[] }]>([
    [
      "the spec's Congo request from a plain object",
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "congo=t61rcWkgMzE" },
      { traceId: "0af7651916cd43dd8448eb211c80319c", parentId: "b7ad6b7169203331", traceState: [["congo", "t61rcWkgMzE"]] },
    ],
    [
      "the spec's Rojo request from Headers",
      fetchHeaders([
        ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"],
        ["tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
      ]),
      { traceId: ROJO.traceId, parentId: ROJO.parentId, traceState: [...ROJO.traceState] },
    ],
    ["TraceParent in mixed case", { TraceParent: TRACEPARENT }, { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [] }],
    ["TRACEPARENT and TRACESTATE in upper case", { TRACEPARENT: TRACEPARENT, TRACESTATE: "foo=1" }, { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [["foo", "1"]] }],
    ["TrAcEsTaTe from Headers", fetchHeaders([["TrAcEpArEnT", TRACEPARENT], ["TrAcEsTaTe", "foo=1"]]), { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [["foo", "1"]] }],
    ["a one-element traceparent array", { traceparent: [TRACEPARENT] }, { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [] }],
    [
      "three tracestate fields from an array, combined in order",
      { traceparent: TRACEPARENT, tracestate: ["foo=1,bar=2", "rojo=1,congo=2", "baz=3"] },
      { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [["foo", "1"], ["bar", "2"], ["rojo", "1"], ["congo", "2"], ["baz", "3"]] },
    ],
    [
      "tracestate fields under differently cased names, combined in order",
      { traceparent: TRACEPARENT, TraceState: "foo=1", tracestate: "bar=2" },
      { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [["foo", "1"], ["bar", "2"]] },
    ],
    [
      "repeated tracestate fields from Headers, combined in order",
      fetchHeaders([["traceparent", TRACEPARENT], ["tracestate", "foo=1"], ["tracestate", "bar=2"]]),
      { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [["foo", "1"], ["bar", "2"]] },
    ],
    ["an empty tracestate field after a valid one", { traceparent: TRACEPARENT, tracestate: ["foo=1", ""] }, { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [["foo", "1"]] }],
    ["an empty tracestate field before a valid one", fetchHeaders([["traceparent", TRACEPARENT], ["tracestate", ""], ["tracestate", "foo=1"]]), { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [["foo", "1"]] }],
    [
      "32 members split over four fields",
      {
        traceparent: TRACEPARENT,
        tracestate: [entries(10), entries(20).slice(10), entries(30).slice(20), entries(32).slice(30)].map((part) =>
          part.map(([k, v]) => `${k}=${v}`).join(","),
        ),
      },
      { traceId: TRACE_ID, parentId: PARENT_ID, traceState: entries(32) },
    ],
    ["a traceparent with OWS from a plain object", { traceparent: ` ${TRACEPARENT}\t` }, { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [] }],
    ["undefined values, which are skipped", { traceparent: TRACEPARENT, TraceParent: undefined, tracestate: undefined }, { traceId: TRACE_ID, parentId: PARENT_ID, traceState: [] }],
  ])("%s", (_name, headers, expected) => {
    expect(extractTraceContext(headers)).toMatchObject(expected);
  });
});

describe("extractTraceContext keeps traceparent but discards tracestate for", () => {
  it.each<[string, string | string[]]>([
    ["33 members across fields", [entries(30), entries(33).slice(30)].map((p) => p.map(([k, v]) => `${k}=${v}`).join(","))],
    ["a key duplicated across fields", ["foo=1", "foo=2"]],
    ["an invalid key", "FOO=1,bar=2"],
    ["an invalid value", "foo=bar=baz,bar=2"],
  ])("%s", (_name, tracestate) => {
    const context = extractTraceContext({ traceparent: TRACEPARENT, tracestate });
    expect(context).toEqual({ traceId: TRACE_ID, parentId: PARENT_ID, sampled: true, traceFlags: 1, traceState: [] });
  });
});

describe("extractTraceContext returns undefined for", () => {
  it.each<[string, TraceContextHeaders]>([
    ["no headers", {}],
    ["tracestate without traceparent", { tracestate: "foo=1" }],
    ["a misspelt trace-parent", { "trace-parent": TRACEPARENT }],
    ["a misspelt trace.parent", { "trace.parent": TRACEPARENT }],
    ["an empty traceparent array", { traceparent: [] }],
    ["two traceparent fields in an array", { traceparent: [TRACEPARENT, `00-${TRACE_ID.replace("1", "2")}-${PARENT_ID}-01`] }],
    ["two traceparent fields under differently cased names", { traceparent: TRACEPARENT, TraceParent: TRACEPARENT }],
    ["two traceparent fields in Headers", fetchHeaders([["traceparent", TRACEPARENT], ["traceparent", TRACEPARENT]])],
    ["an invalid traceparent with a valid tracestate", { traceparent: `ff-${TRACE_ID}-${PARENT_ID}-01`, tracestate: "foo=1" }],
  ])("%s", (_name, headers) => {
    expect(extractTraceContext(headers)).toBeUndefined();
  });

  it("an invalid traceparent without reading tracestate at all", () => {
    const invalid = new RecordingHeaders({ traceparent: `00-${"0".repeat(32)}-${PARENT_ID}-01`, tracestate: "foo=1" });
    expect(extractTraceContext(invalid)).toBeUndefined();
    expect(invalid.read).toEqual(["traceparent"]);

    const valid = new RecordingHeaders({ traceparent: TRACEPARENT, tracestate: "foo=1" });
    expect(extractTraceContext(valid)?.traceState).toEqual([["foo", "1"]]);
    expect(valid.read).toEqual(["traceparent", "tracestate"]);
  });
});

describe("injectTraceContext", () => {
  it.each<[string, TraceContext, Record<string, string>]>([
    ["writes the spec's Rojo headers", ROJO, { traceparent: "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", tracestate: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" }],
    [
      "omits an empty tracestate and writes unsampled flags as 00",
      { traceId: TRACE_ID, parentId: PARENT_ID, sampled: false, traceFlags: 0, traceState: [] },
      { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` },
    ],
    [
      "writes the random flag as 02",
      { traceId: TRACE_ID, parentId: PARENT_ID, sampled: false, traceFlags: TRACE_FLAG_RANDOM, traceState: [] },
      { traceparent: `00-${TRACE_ID}-${PARENT_ID}-02` },
    ],
    [
      "keeps a value's leading spaces",
      { ...ROJO, traceState: [["foo", "  bar"]] },
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", tracestate: "foo=  bar" },
    ],
  ])("%s", (_name, context, expected) => {
    expect(injectTraceContext(context)).toEqual(expected);
  });

  it.each<[string, TraceContext]>([
    ["the Rojo context", ROJO],
    ["an unsampled random context with multi-tenant keys", { traceId: TRACE_ID, parentId: PARENT_ID, sampled: false, traceFlags: 2, traceState: [["fw529a3039@dt", " x"], ["congo", "t61rcWkgMzE"]] }],
    ["a context with 32 members", { ...ROJO, traceState: entries(32) }],
  ])("round-trips %s through extractTraceContext, in a plain object and in Headers", (_name, context) => {
    expect(extractTraceContext(injectTraceContext(context))).toEqual(context);
    expect(extractTraceContext(injectTraceContext(context, new Headers()))).toEqual(context);
  });

  it("replaces trace context fields of any casing in a plain object, keeping the others", () => {
    const headers: Record<string, string | string[] | undefined> = {
      TraceParent: TRACEPARENT,
      TRACESTATE: "stale=1",
      "content-type": "application/json",
    };
    const result = injectTraceContext({ ...ROJO, traceState: [] }, headers);
    expect(result).toBe(headers);
    expect(headers).toEqual({ "content-type": "application/json", traceparent: formatTraceParent(ROJO) });
  });

  it("sets Headers in place and deletes a stale tracestate when there is none", () => {
    const headers = fetchHeaders([["traceparent", TRACEPARENT], ["tracestate", "stale=1"], ["x-other", "1"]]);
    expect(injectTraceContext({ ...ROJO, traceState: [] }, headers)).toBe(headers);
    expect([...headers.entries()]).toEqual([
      ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"],
      ["x-other", "1"],
    ]);
  });

  it.each<[string, Partial<TraceContext>, RegExp]>([
    ["an uppercase traceId", { traceId: TRACE_ID.replace("1", "A") }, /^traceId must be 32 lowercase hex digits/],
    ["an all-zero traceId", { traceId: "0".repeat(32) }, /^traceId /],
    ["a 31-digit traceId", { traceId: TRACE_ID.slice(1) }, /^traceId /],
    ["an all-zero parentId", { parentId: "0".repeat(16) }, /^parentId must be 16 lowercase hex digits/],
    ["a 17-digit parentId", { parentId: `${PARENT_ID}0` }, /^parentId /],
    ["a reserved flag (04)", { traceFlags: 0x05 }, /^traceFlags must use only bits/],
    ["flags over 255", { traceFlags: 0x101 }, /^traceFlags /],
    ["negative flags", { traceFlags: -1 }, /^traceFlags /],
    ["fractional flags", { traceFlags: 1.5 }, /^traceFlags /],
    ["sampled without the sampled bit", { sampled: true, traceFlags: 0 }, /^sampled must equal bit 0x01/],
    ["the sampled bit without sampled", { sampled: false, traceFlags: 1 }, /^sampled /],
    ["an invalid tracestate key", { traceState: [["Congo", "1"]] }, /^tracestate key /],
    ["an invalid tracestate value", { traceState: [["congo", "a,b"]] }, /^tracestate value of congo /],
    ["a value ending in a space", { traceState: [["congo", "a "]] }, /^tracestate value of congo /],
    ["a duplicated tracestate key", { traceState: [["congo", "1"], ["congo", "2"]] }, /^traceState must not repeat a key/],
    ["33 tracestate members", { traceState: entries(33) }, /^traceState must have at most 32 members, got 33/],
  ])("throws a TypeError for %s and leaves the headers untouched", (_name, change, message) => {
    const headers = { traceparent: TRACEPARENT };
    expect(() => injectTraceContext({ ...ROJO, ...change }, headers)).toThrow(TypeError);
    expect(() => injectTraceContext({ ...ROJO, ...change }, headers)).toThrow(message);
    expect(headers).toEqual({ traceparent: TRACEPARENT });
  });
});

describe("formatTraceParent and formatTraceState", () => {
  it("format the spec's examples", () => {
    expect(formatTraceParent({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", parentId: "00f067aa0ba902b7", sampled: false, traceFlags: 0 })).toBe(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    );
    expect(formatTraceState(ROJO.traceState)).toBe("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    expect(formatTraceState([])).toBe("");
  });

  it("validate what they format", () => {
    expect(() => formatTraceParent({ ...ROJO, parentId: "0".repeat(16) })).toThrow(/^parentId /);
    expect(() => formatTraceState([["a", "1"], ["a", "1"]])).toThrow(/^traceState must not repeat a key/);
  });

  it("formatTraceParent ignores the tracestate", () => {
    const badState: TraceContext = { ...ROJO, traceState: [["BAD", ""]] };
    expect(formatTraceParent(badState)).toBe("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01");
  });
});

describe("newTraceContext", () => {
  it("draws a 16-byte trace-id, then an 8-byte parent-id, and sets sampled and random", () => {
    const random = scriptedRandom(0xab, 0xcd);
    expect(newTraceContext(random)).toEqual({
      traceId: "ab".repeat(16),
      parentId: "cd".repeat(8),
      sampled: true,
      traceFlags: TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM,
      traceState: [],
    });
    expect(random.sizes).toEqual([16, 8]);
  });

  it("can start an unsampled trace", () => {
    expect(newTraceContext(scriptedRandom(1, 2), false)).toMatchObject({ sampled: false, traceFlags: TRACE_FLAG_RANDOM });
  });

  it("redraws all-zero ids", () => {
    const random = scriptedRandom(0, 0x11, 0, 0, 0x22);
    expect(newTraceContext(random)).toMatchObject({ traceId: "11".repeat(16), parentId: "22".repeat(8) });
    expect(random.sizes).toEqual([16, 16, 8, 8, 8]);
  });

  it("gives up on a source that only returns zeros", () => {
    expect(() => newTraceContext((size) => new Uint8Array(size))).toThrow(/all-zero traceId 8 times/);
  });

  it("rejects a source that returns the wrong number of bytes", () => {
    expect(() => newTraceContext(() => new Uint8Array(4))).toThrow(TypeError);
  });

  it("uses crypto.randomBytes by default: valid, distinct ids", () => {
    const a = newTraceContext();
    const b = newTraceContext();
    expect(extractTraceContext(injectTraceContext(a))).toEqual(a);
    expect(a.traceId).not.toBe(b.traceId);
    expect(a.parentId).not.toBe(b.parentId);
  });
});

describe("childContext", () => {
  it("keeps trace-id, flags and tracestate and draws a new parent-id", () => {
    const random = scriptedRandom(0x77);
    const parent: TraceContext = { ...ROJO, traceFlags: 3 };
    const child = childContext(parent, random);
    expect(child).toEqual({ ...parent, parentId: "77".repeat(8) });
    expect(random.sizes).toEqual([8]);
    expect(parent.parentId).toBe(ROJO.parentId);
  });

  it("gives a different parent-id each time by default", () => {
    const ids = new Set(Array.from({ length: 3 }, () => childContext(ROJO).parentId));
    expect(ids.size).toBe(3);
    expect(ids.has(ROJO.parentId)).toBe(false);
  });

  it("rejects an invalid parent", () => {
    expect(() => childContext({ ...ROJO, traceId: "0".repeat(32) })).toThrow(TypeError);
  });
});

describe("updateTraceState", () => {
  const congoFirstHop: TraceContext = { ...ROJO, parentId: "b7ad6b7169203331", traceState: [["congo", "t61rcWkgMzE"]] };

  it.each<[string, TraceContext, string, string, string]>([
    ["adds a new key on the left (the spec's Rojo hop)", congoFirstHop, "rojo", "00f067aa0ba902b7", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
    ["moves an updated key to the left (the spec's second Congo hop)", ROJO, "congo", "ucfJifl5GOE", "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7"],
    ["keeps the order of the other members", { ...ROJO, traceState: [["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"]] }, "c", "9", "c=9,a=1,b=2,d=4"],
    ["leaves the first key in place when it is the one updated", ROJO, "rojo", "1", "rojo=1,congo=t61rcWkgMzE"],
    ["starts a tracestate", { ...ROJO, traceState: [] }, "fw529a3039@dt", "x", "fw529a3039@dt=x"],
  ])("%s", (_name, context, key, value, expected) => {
    expect(formatTraceState(updateTraceState(context, key, value).traceState)).toBe(expected);
  });

  it("drops the right-most member when a new key would make 33", () => {
    const next = updateTraceState({ ...ROJO, traceState: entries(32) }, "new", "1");
    expect(next.traceState).toHaveLength(MAX_TRACE_STATE_MEMBERS);
    expect(next.traceState[0]).toEqual(["new", "1"]);
    expect(next.traceState.slice(1)).toEqual(entries(31));
  });

  it("drops nothing when updating a key of a full list", () => {
    const next = updateTraceState({ ...ROJO, traceState: entries(32) }, "k31", "x");
    expect(next.traceState).toEqual([["k31", "x"], ...entries(31)]);
  });

  it("does not modify the given context", () => {
    const traceState: TraceStateEntry[] = [["congo", "t61rcWkgMzE"]];
    const context = { ...ROJO, traceState };
    const next = updateTraceState(context, "rojo", "1");
    expect(context.traceState).toEqual([["congo", "t61rcWkgMzE"]]);
    expect(next).toEqual({ ...ROJO, traceState: [["rojo", "1"], ["congo", "t61rcWkgMzE"]] });
  });

  it.each<[string, string, string]>([
    ["an uppercase key", "Rojo", "1"],
    ["a key starting with a digit and no tenant", "1rojo", "1"],
    ["a system id of 15 characters", `t@${"v".repeat(15)}`, "1"],
    ["an empty value", "rojo", ""],
    ["a value with =", "rojo", "a=b"],
    ["a value of 257 characters", "rojo", "v".repeat(257)],
  ])("throws a TypeError for %s", (_name, key, value) => {
    expect(() => updateTraceState(ROJO, key, value)).toThrow(TypeError);
  });
});
