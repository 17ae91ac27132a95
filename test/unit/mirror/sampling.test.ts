import { describe, expect, it } from "vitest";
import {
  fnv1a32,
  isSampledIn,
  sampleBucket,
  sampleKey,
  sampleThreshold,
} from "../../../server/core/mirror/sampling.js";
import { mulberry32, uuid } from "./builders.js";

/** 100k request ids: random v4 UUIDs from a fixed seed. */
const uuids = (() => {
  const random = mulberry32(42);
  return Array.from({ length: 100_000 }, () => uuid(random));
})();

/** 100k sequential ids, as a counter-based proxy would mint them. */
const sequentialIds = Array.from({ length: 100_000 }, (_, i) => `req-${i}`);

function sampledShare(ids: readonly string[], rate: number): number {
  return ids.filter((id) => isSampledIn(id, rate)).length / ids.length;
}

describe("fnv1a32", () => {
  it.each<[string, number]>([
    ["", 0x811c9dc5],
    ["a", 0xe40c292c],
    ["foobar", 0xbf9cf968],
  ])("matches the published FNV-1a 32-bit vector for %j", (text, hash) => {
    expect(fnv1a32(text)).toBe(hash);
  });

  it.each(["é", "日本", "🙂", "a\u{10ffff}z", "mixed é 日 🙂 ascii"])("hashes the UTF-8 bytes of %j", (text) => {
    let reference = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(text)) reference = Math.imul(reference ^ byte, 0x01000193) >>> 0;
    expect(fnv1a32(text)).toBe(reference);
  });

  it("hashes a lone surrogate as U+FFFD, as TextEncoder does", () => {
    expect(fnv1a32("a\ud800b")).toBe(fnv1a32("a\ufffdb"));
  });
});

describe("consistent sampling", () => {
  it.each<[number, number]>([
    [0, 0],
    [0.05, 500],
    [0.07, 700],
    [0.1, 1000],
    [0.33335, 3334],
    [1, 10_000],
  ])("sample_rate %s admits %s of 10000 buckets", (rate, threshold) => {
    expect(sampleThreshold(rate)).toBe(threshold);
  });

  it.each<[string, readonly string[], number]>([
    ["random UUIDs", uuids, 0.01],
    ["random UUIDs", uuids, 0.05],
    ["random UUIDs", uuids, 0.1],
    ["random UUIDs", uuids, 0.5],
    ["sequential ids", sequentialIds, 0.05],
    ["sequential ids", sequentialIds, 0.25],
  ])("samples %s within ±1 point of the rate %s", (_, ids, rate) => {
    expect(Math.abs(sampledShare(ids, rate) - rate)).toBeLessThan(0.01);
  });

  it("samples nothing at rate 0 and everything at rate 1", () => {
    expect(sampledShare(uuids.slice(0, 10_000), 0)).toBe(0);
    expect(sampledShare(uuids.slice(0, 10_000), 1)).toBe(1);
  });

  it.each<[number, number]>([
    [0.01, 0.05],
    [0.05, 0.1],
    [0.1, 0.5],
    [0.5, 0.99],
  ])("a %s sample is a subset of a %s sample", (small, large) => {
    const inSmall = uuids.filter((id) => isSampledIn(id, small));
    expect(inSmall.length).toBeGreaterThan(0);
    expect(inSmall.every((id) => isSampledIn(id, large))).toBe(true);
  });

  it("decides the same way every time: no salt, no state", () => {
    const first = uuids.slice(0, 1000).map((id) => isSampledIn(id, 0.2));
    const second = uuids.slice(0, 1000).map((id) => isSampledIn(id, 0.2));
    expect(second).toEqual(first);
    expect(sampleBucket("req-1")).toBe(fnv1a32("req-1") % 10_000);
  });

  it.each<[string | undefined, string | undefined, ReturnType<typeof sampleKey>]>([
    ["r1", "t1", { key: "r1", source: "request_id" }],
    ["", "t1", { key: "t1", source: "trace_id" }],
    [undefined, "t1", { key: "t1", source: "trace_id" }],
    ["", "", undefined],
    [undefined, undefined, undefined],
  ])("the sampling key of request_id %j, trace_id %j", (requestId, traceId, expected) => {
    expect(sampleKey(requestId, traceId)).toEqual(expected);
  });
});
