import { create } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { timestampMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MirrorMode, MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { isSampledIn } from "../../../server/core/mirror/sampling.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import {
  callOptions as opts,
  capture,
  jsonValue,
  mirrorConfig,
  traceA,
  type CaptureInit,
  type MirrorClient,
  type MirrorConfigInit,
} from "../../fixtures/mirror.js";
import { rpcError } from "../../fixtures/tracing.js";

const shadowUrl = "http://127.0.0.1:9";

/** A client stream of `captures`, one message each. */
async function* stream(captures: Iterable<CaptureInit | undefined>): AsyncGenerator<{ capture?: CaptureInit }> {
  for (const item of captures) yield item === undefined ? {} : { capture: item };
}

function* numbered(count: number, prefix: string, overrides: Partial<CaptureInit> = {}): Generator<CaptureInit> {
  for (let i = 0; i < count; i++) yield capture(`${prefix}-${i}`, overrides);
}

describe.each(["grpc", "connect"] as const)("MirrorService capture over %s", (transport) => {
  let server: TestControlPlane;
  let mirror: MirrorClient;
  /** The client of CaptureStream calls: client streaming over Connect needs HTTP/2. */
  let streaming: MirrorClient;
  beforeAll(async () => {
    server = await startTestControlPlane();
    mirror = transport === "grpc" ? server.grpc(MirrorService) : server.http(MirrorService);
    streaming = transport === "grpc" ? mirror : server.http(MirrorService, { httpVersion: "2" });
  });
  afterAll(() => server.stop());
  beforeEach(async () => {
    for (const { mirrorId } of (await mirror.listMirrors({}, opts)).mirrors) await mirror.removeMirror({ mirrorId }, opts);
  });

  const add = (mirrorId: string, overrides: Partial<MirrorConfigInit> = {}) =>
    mirror.addMirror({ mirror: mirrorConfig(mirrorId, shadowUrl, overrides) }, opts);
  const drainIds = async (mirrorId: string, limit = 10_000): Promise<string[]> =>
    (await mirror.drain({ mirrorId, limit }, opts)).requests.map((r) => r.requestId);
  const pending = async (mirrorId = ""): Promise<number> => Number((await mirror.pendingCount({ mirrorId }, opts)).pending);

  async function invalid(promise: Promise<unknown>): Promise<string> {
    const error = await rpcError(promise);
    expect(error.code, error.message).toBe(Code.InvalidArgument);
    return error.message;
  }

  it("queues a capture into every FULL mirror of its source service and answers one count per mirror", async () => {
    await add("full-b");
    await add("full-a");
    await add("payments", { sourceService: "payments" });
    const counts = await mirror.capture(capture("r1"), opts);
    expect(counts.mirrors.map(({ mirrorId, queued, dropped }) => ({ mirrorId, queued, dropped }))).toEqual([
      { mirrorId: "full-a", queued: 1, dropped: 0 },
      { mirrorId: "full-b", queued: 1, dropped: 0 },
    ]);
    expect((await mirror.capture(capture("r2", { sourceService: "billing" }), opts)).mirrors).toEqual([]);
    expect(await pending("full-a")).toBe(1);
    expect(await pending("payments")).toBe(0);
    expect(await pending()).toBe(2);
  });

  it("captures nothing into a disabled mirror until it is enabled again", async () => {
    await add("off", { enabled: false });
    expect((await mirror.capture(capture("r1"), opts)).mirrors).toEqual([]);
    expect((await mirror.shouldMirror({ mirrorId: "off", intent: "create_order", requestId: "r1" }, opts))).toMatchObject({
      mirror: false,
      reason: "mirror off is disabled",
    });
    await mirror.enableMirror({ mirrorId: "off" }, opts);
    expect((await mirror.capture(capture("r2"), opts)).mirrors.map((m) => m.mirrorId)).toEqual(["off"]);
    await mirror.disableMirror({ mirrorId: "off" }, opts);
    expect((await mirror.capture(capture("r3"), opts)).mirrors).toEqual([]);
    expect(await drainIds("off")).toEqual(["r2"]);
    const stats = (await mirror.stats({}, opts)).mirrors.find((m) => m.mirrorId === "off");
    expect(stats).toMatchObject({ captured: 1n, dropped: 0n });
  });

  it("samples consistently: a 5% mirror's captures are exactly the hash's and a subset of a 10% mirror's", async () => {
    await add("s10", { mode: MirrorMode.SAMPLED, sampleRate: 0.1, bufferSize: 5000 });
    await add("s05", { mode: MirrorMode.SAMPLED, sampleRate: 0.05, bufferSize: 5000 });
    const ids = Array.from({ length: 2000 }, (_, i) => `req-${i.toString(36)}-${(i * 7919) % 1000}`);
    const response = await streaming.captureStream(stream(ids.map((id) => capture(id))), opts);
    expect(response.captures).toBe(2000);
    const five = await drainIds("s05");
    const ten = await drainIds("s10");
    expect(five).toEqual(ids.filter((id) => isSampledIn(id, 0.05)));
    expect(ten).toEqual(ids.filter((id) => isSampledIn(id, 0.1)));
    const tenSet = new Set(ten);
    expect(five.every((id) => tenSet.has(id))).toBe(true);
    expect(five.length).toBeGreaterThan(60);
    expect(five.length).toBeLessThan(140);
    expect(ten.length).toBeGreaterThan(150);
    expect(ten.length).toBeLessThan(250);
    expect(response.mirrors.map((m) => [m.mirrorId, m.queued])).toEqual([["s05", five.length], ["s10", ten.length]]);
    // ShouldMirror gives the same decision for the same request id.
    for (const id of ids.slice(0, 50)) {
      const decision = await mirror.shouldMirror({ mirrorId: "s05", intent: "x", requestId: id }, opts);
      expect(decision.mirror).toBe(five.includes(id));
    }
  });

  it("explains SAMPLED decisions: hash of request_id, fallback to trace_id, caller's seed, nothing to decide on", async () => {
    await add("s05", { mode: MirrorMode.SAMPLED, sampleRate: 0.05 });
    const byRequest = await mirror.shouldMirror({ mirrorId: "s05", intent: "x", requestId: "r-1", traceId: traceA }, opts);
    expect(byRequest.reason).toMatch(/^bucket \d+ (<|>=) threshold 500 \(sample_rate 0.05, key from request_id\)$/);
    const byTrace = await mirror.shouldMirror({ mirrorId: "s05", intent: "x", traceId: traceA }, opts);
    expect(byTrace.reason).toMatch(/key from trace_id\)$/);
    expect(byTrace.mirror).toBe(isSampledIn(traceA, 0.05));
    expect(await mirror.shouldMirror({ mirrorId: "s05", intent: "x", sampleSeed: 0.04 }, opts)).toMatchObject({
      mirror: true,
      reason: "sample_seed 0.04 < sample_rate 0.05",
    });
    expect(await mirror.shouldMirror({ mirrorId: "s05", intent: "x", requestId: "r-1", sampleSeed: 0.05 }, opts)).toMatchObject({
      mirror: false,
      reason: "sample_seed 0.05 >= sample_rate 0.05",
    });
    expect(await mirror.shouldMirror({ mirrorId: "s05", intent: "x" }, opts)).toMatchObject({
      mirror: false,
      reason: "SAMPLED mode needs a request_id, trace_id or sample_seed to decide on",
    });
    expect(await invalid(mirror.shouldMirror({ mirrorId: "s05", intent: "x", sampleSeed: 1 }, opts))).toBe("sample_seed must be in [0, 1), got 1");
    expect(await invalid(mirror.shouldMirror({ mirrorId: "s05", intent: "x", sampleSeed: -0.5 }, opts))).toMatch(/^sample_seed /);
  });

  it("filters by intent: exclude wins over include, an empty include takes every intent not excluded", async () => {
    await add("f-inc", { mode: MirrorMode.FILTERED, includeIntents: ["create_order", "refund"], excludeIntents: ["refund"] });
    await add("f-exc", { mode: MirrorMode.FILTERED, excludeIntents: ["refund"] });
    for (const intent of ["create_order", "refund", "cancel", "Create_Order"]) {
      await mirror.capture(capture(`r-${intent}`, { intent }), opts);
    }
    expect(await drainIds("f-inc")).toEqual(["r-create_order"]);
    expect(await drainIds("f-exc")).toEqual(["r-create_order", "r-cancel", "r-Create_Order"]);
    const explain = async (mirrorId: string, intent: string) => mirror.shouldMirror({ mirrorId, intent, requestId: "r" }, opts);
    expect(await explain("f-inc", "refund")).toMatchObject({ mirror: false, reason: 'intent "refund" is in exclude_intents' });
    expect(await explain("f-inc", "cancel")).toMatchObject({ mirror: false, reason: 'intent "cancel" is not in include_intents' });
    expect(await explain("f-inc", "create_order")).toMatchObject({ mirror: true, reason: 'intent "create_order" is in include_intents' });
    expect(await explain("f-exc", "cancel")).toMatchObject({
      mirror: true,
      reason: 'intent "cancel" is not excluded and include_intents is empty',
    });
  });

  it("records every request of its source in REPLAY mode and says why in FULL mode", async () => {
    await add("replay", { mode: MirrorMode.REPLAY });
    await add("full");
    for (const intent of ["a", "b", "c"]) await mirror.capture(capture(`r-${intent}`, { intent }), opts);
    expect(await drainIds("replay")).toEqual(["r-a", "r-b", "r-c"]);
    expect((await mirror.shouldMirror({ mirrorId: "replay", intent: "z" }, opts)).reason).toBe(
      "REPLAY mode records every request for a later replay",
    );
    expect((await mirror.shouldMirror({ mirrorId: "full", intent: "z" }, opts)).reason).toBe("FULL mode mirrors every request");
  });

  it("never captures shadow traffic (the marker header) again", async () => {
    await add("full");
    const counts = await mirror.capture(capture("loop", { headers: { "X-LatticeForge-Shadow": "other" } }), opts);
    expect(counts.mirrors).toEqual([]);
    expect(await pending()).toBe(0);
  });

  it("drops and counts captures past a small buffer_size and never blocks", async () => {
    await add("small", { bufferSize: 3 });
    await add("big");
    const counts = [];
    for (let i = 1; i <= 5; i++) counts.push((await mirror.capture(capture(`r${i}`), opts)).mirrors);
    expect(counts.map((c) => c.map((m) => `${m.mirrorId}:${m.queued}/${m.dropped}`))).toEqual([
      ["big:1/0", "small:1/0"],
      ["big:1/0", "small:1/0"],
      ["big:1/0", "small:1/0"],
      ["big:1/0", "small:0/1"],
      ["big:1/0", "small:0/1"],
    ]);
    const stats = (await mirror.stats({}, opts)).mirrors.map(({ mirrorId, captured, dropped, pending }) => ({ mirrorId, captured, dropped, pending }));
    expect(stats).toEqual([
      { mirrorId: "big", captured: 5n, dropped: 0n, pending: 5n },
      { mirrorId: "small", captured: 3n, dropped: 2n, pending: 3n },
    ]);
    expect(await drainIds("small")).toEqual(["r1", "r2", "r3"]);
  });

  it("answers a CaptureStream of 2,000 captures once at the end with per-mirror counts", async () => {
    await add("stream-small", { bufferSize: 1500 });
    await add("stream-big", { bufferSize: 5000 });
    await add("stream-filtered", { mode: MirrorMode.FILTERED, includeIntents: ["even"] });
    const captures = Array.from({ length: 2000 }, (_, i) => capture(`s-${i}`, { intent: i % 2 === 0 ? "even" : "odd" }));
    const response = await streaming.captureStream(stream(captures), opts);
    expect(response.captures).toBe(2000);
    expect(response.mirrors.map(({ mirrorId, queued, dropped }) => ({ mirrorId, queued, dropped }))).toEqual([
      { mirrorId: "stream-big", queued: 2000, dropped: 0 },
      { mirrorId: "stream-filtered", queued: 1000, dropped: 0 },
      { mirrorId: "stream-small", queued: 1500, dropped: 500 },
    ]);
    expect(await pending()).toBe(4500);
    const first = await mirror.drain({ mirrorId: "stream-big", limit: 3 }, opts);
    expect(first.requests.map((r) => r.requestId)).toEqual(["s-0", "s-1", "s-2"]);
    expect((await drainIds("stream-small")).at(-1)).toBe("s-1499");
  });

  it("answers an empty CaptureStream with zero captures", async () => {
    await add("full");
    expect(await streaming.captureStream(stream([]), opts)).toMatchObject({ captures: 0, mirrors: [] });
  });

  it("fails a CaptureStream at an invalid capture naming capture[i], keeping the captures before it", async () => {
    await add("full");
    const captures = [...numbered(5, "ok"), capture("", {}), ...numbered(5, "after")];
    const message = await invalid(streaming.captureStream(stream(captures), opts));
    expect(message).toBe("capture[5].request_id must not be empty");
    expect(await drainIds("full")).toEqual(["ok-0", "ok-1", "ok-2", "ok-3", "ok-4"]);
  });

  it("names the nested field of an invalid capture in a stream, and a message without a capture", async () => {
    await add("full");
    expect(await invalid(streaming.captureStream(stream([capture("a"), capture("b", { path: "no-slash" })]), opts))).toMatch(
      /^capture\[1\]\.path must start with \//,
    );
    expect(await invalid(streaming.captureStream(stream([capture("c"), undefined]), opts))).toBe("capture[1] is required");
    expect(await invalid(streaming.captureStream(stream([capture("d", { headers: { "X-A": "1", "x-a": "2" } })]), opts))).toMatch(
      /^capture\[0\]\.headers\["x-a"\] repeats header "x-a"/,
    );
  });

  it("hands out every field of a capture through Drain, oldest first, with sensitive headers redacted", async () => {
    await add("plain");
    await add("strict", { redactHeaders: ["X-Session"] });
    const before = Date.now();
    await mirror.capture(
      capture("r1", {
        method: "put",
        path: "/orders/1?x=y",
        headers: { Authorization: "Bearer s3cr3t", Cookie: "sid=1", "X-Session": "abc", "X-Api-Key": "k", Accept: "*/*" },
        payload: { orderId: "r1", nested: { list: [1, "two", null, true] } },
        body: new Uint8Array([1, 2, 3]),
        productionResponse: jsonValue({ total: 10, items: [{ price: 1 }] }),
      }),
      opts,
    );
    await mirror.capture(capture("r2"), opts);
    const [plain1, plain2] = (await mirror.drain({ mirrorId: "plain" }, opts)).requests;
    expect(plain1).toMatchObject({
      requestId: "r1",
      traceId: traceA,
      sourceService: "orders",
      intent: "create_order",
      method: "PUT",
      path: "/orders/1?x=y",
      payload: { orderId: "r1", nested: { list: [1, "two", null, true] } },
      headers: { authorization: "[REDACTED]", cookie: "[REDACTED]", "x-session": "abc", "x-api-key": "[REDACTED]", accept: "*/*" },
    });
    expect([...plain1!.body]).toEqual([1, 2, 3]);
    expect(plain1!.productionResponse).toEqual(jsonValue({ total: 10, items: [{ price: 1 }] }));
    expect(timestampMs(plain1!.mirroredAt!)).toBeGreaterThanOrEqual(before - 1);
    expect(plain2!.requestId).toBe("r2");
    expect(plain2!.productionResponse).toBeUndefined();
    const [strict1] = (await mirror.drain({ mirrorId: "strict", limit: 1 }, opts)).requests;
    expect(strict1!.headers).toEqual({
      authorization: "[REDACTED]",
      cookie: "[REDACTED]",
      "x-session": "[REDACTED]",
      "x-api-key": "[REDACTED]",
      accept: "*/*",
    });
  });

  it("drains up to the limit (default 100), oldest first, and counts pending as it goes", async () => {
    await add("d", { bufferSize: 500 });
    await streaming.captureStream(stream(numbered(250, "d")), opts);
    expect(await pending("d")).toBe(250);
    const first = await drainIds("d", 0);
    expect(first).toHaveLength(100);
    expect(first[0]).toBe("d-0");
    expect(first[99]).toBe("d-99");
    expect(await pending("d")).toBe(150);
    expect(await drainIds("d", 2)).toEqual(["d-100", "d-101"]);
    expect((await drainIds("d", 10_000)).length).toBe(148);
    expect(await drainIds("d", 5)).toEqual([]);
    expect(await pending("d")).toBe(0);
    expect(await invalid(mirror.drain({ mirrorId: "d", limit: 10_001 }, opts))).toBe("limit must be an integer in 1..10000 (0 for 100), got 10001");
    expect(await invalid(mirror.drain({ mirrorId: "d", limit: -1 }, opts))).toMatch(/^limit /);
  });

  it("reports Stats per mirror by mirror_id, pending falling as requests are drained", async () => {
    await add("z", { bufferSize: 2 });
    await add("a");
    for (let i = 0; i < 4; i++) await mirror.capture(capture(`r${i}`), opts);
    await mirror.drain({ mirrorId: "a", limit: 3 }, opts);
    const stats = (await mirror.stats({}, opts)).mirrors;
    expect(stats.map(({ mirrorId, captured, dropped, pending, dispatched, failed, diffs }) => ({ mirrorId, captured, dropped, pending, dispatched, failed, diffs }))).toEqual([
      { mirrorId: "a", captured: 4n, dropped: 0n, pending: 1n, dispatched: 0n, failed: 0n, diffs: 0n },
      { mirrorId: "z", captured: 2n, dropped: 2n, pending: 2n, dispatched: 0n, failed: 0n, diffs: 0n },
    ]);
  });

  it.each<[string, Partial<CaptureInit>, RegExp]>([
    ["request_id", { requestId: "" }, /^request_id must not be empty$/],
    ["request_id", { requestId: "has space" }, /^request_id must be 1..256 visible ASCII characters/],
    ["trace_id", { traceId: "XYZ" }, /^trace_id must be 32 lowercase hex digits/],
    ["source_service", { sourceService: "" }, /^source_service must not be empty$/],
    ["intent", { intent: "" }, /^intent must not be empty$/],
    ["method", { method: "GE T" }, /^method must be an HTTP method token/],
    ["path", { path: "/a#b" }, /^path must start with \/ and hold only visible ASCII without #/],
    ["headers", { headers: { "bad name": "x" } }, /^headers\["bad name"\] must be an HTTP header name/],
    ["headers", { headers: { "x-a": "line\r\nbreak" } }, /^headers\["x-a"\] value must not contain CR, LF or NUL$/],
    ["payload", { payload: { big: "x".repeat(1024 * 1024) } }, /^payload must encode to at most 1048576 bytes of JSON, got 1048586$/],
    ["payload", { payload: { nested: { n: Number.NaN } } }, /^payload\["nested"\]\["n"\] must be a finite number, got NaN$/],
  ])("refuses a Capture with a bad %s naming it (%#)", async (_, overrides, rule) => {
    await add("full");
    expect(await invalid(mirror.capture(capture("r", overrides), opts))).toMatch(rule);
    expect(await pending()).toBe(0);
  });

  it("names the body field when a raw body is over the limit", async () => {
    await add("full");
    const message = await invalid(mirror.capture(capture("big", { body: new Uint8Array(1024 * 1024 + 1) }), opts));
    expect(message).toBe("body must be at most 1048576 bytes, got 1048577");
  });

  it("refuses a production_response holding NaN or Infinity as INVALID_ARGUMENT, not an internal error", async () => {
    await add("full");
    const nan = create(ValueSchema, { kind: { case: "numberValue", value: Number.NaN } });
    expect(await invalid(mirror.capture(capture("nan", { productionResponse: nan }), opts))).toMatch(/^production_response must be a finite number/);
    const nested = create(ValueSchema, {
      kind: { case: "structValue", value: { fields: { total: create(ValueSchema, { kind: { case: "numberValue", value: Infinity } }) } } },
    });
    expect(await invalid(streaming.captureStream(stream([capture("ok"), capture("inf", { productionResponse: nested })]), opts))).toMatch(
      /^capture\[1\]\.production_response\["total"\] must be a finite number/,
    );
    const empty = create(ValueSchema, {});
    expect(await invalid(mirror.capture(capture("empty", { productionResponse: empty }), opts))).toMatch(/^production_response /);
  });
});

describe("MirrorService capture when the store fails a write", () => {
  let server: TestControlPlane;
  let mirror: MirrorClient;
  let db: Database.Database;
  beforeAll(async () => {
    server = await startTestControlPlane();
    mirror = server.grpc(MirrorService);
    // A second connection to the server's database injects failures with a trigger.
    db = new Database(server.config.db);
  });
  afterAll(async () => {
    db.close();
    await server.stop();
  });
  beforeEach(async () => {
    db.exec("DROP TRIGGER IF EXISTS fail_boom");
    for (const { mirrorId } of (await mirror.listMirrors({}, opts)).mirrors) await mirror.removeMirror({ mirrorId }, opts);
  });

  const failBoomInto = (mirrorId: string): void => {
    db.exec(`CREATE TRIGGER fail_boom BEFORE INSERT ON mirror_buffer
             WHEN NEW.mirror_id = '${mirrorId}'
               AND (SELECT request FROM mirror_payloads WHERE payload_id = NEW.payload_id) LIKE '%"boom%'
             BEGIN SELECT RAISE(ABORT, 'injected disk failure'); END`);
  };
  const counters = async () =>
    (await mirror.stats({}, opts)).mirrors.map(({ mirrorId, captured, pending }) => `${mirrorId}:${captured}/${pending}`);

  it("fails a Capture as INTERNAL and counts nothing in any mirror, not even those written before the failure", async () => {
    await mirror.addMirror({ mirror: mirrorConfig("a", shadowUrl) }, opts);
    await mirror.addMirror({ mirror: mirrorConfig("b", shadowUrl) }, opts);
    failBoomInto("b");
    const error = await rpcError(mirror.capture(capture("boom-1"), opts));
    expect(error).toEqual({ code: Code.Internal, message: "internal error" });
    expect(await counters()).toEqual(["a:0/0", "b:0/0"]);
    await mirror.capture(capture("ok-1"), opts);
    expect(await counters()).toEqual(["a:1/1", "b:1/1"]);
    expect((await mirror.drain({ mirrorId: "a" }, opts)).requests.map((r) => r.requestId)).toEqual(["ok-1"]);
  });

  it("ends a CaptureStream at the next message after a capture failed in the store, keeping those committed before", async () => {
    await mirror.addMirror({ mirror: mirrorConfig("a", shadowUrl) }, opts);
    failBoomInto("a");
    let sentAfterFailure = 0;
    async function* messages(): AsyncGenerator<{ capture: CaptureInit }> {
      yield { capture: capture("ok-1") };
      // Committed before the failing one is sent (captures sent together share a write).
      await new Promise((resolve) => setTimeout(resolve, 200));
      yield { capture: capture("boom-2") };
      // The failing commit happens while the server waits for the next message.
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (let i = 3; i < 6; i++) {
        sentAfterFailure++;
        yield { capture: capture(`late-${i}`) };
      }
    }
    const error = await rpcError(mirror.captureStream(messages(), opts));
    expect(error).toEqual({ code: Code.Internal, message: "internal error" });
    expect(sentAfterFailure).toBeGreaterThan(0);
    expect((await mirror.drain({ mirrorId: "a" }, opts)).requests.map((r) => r.requestId)).toEqual(["ok-1"]);
  });

  it("reports the store failure of captures sent before an invalid one rather than INVALID_ARGUMENT", async () => {
    await mirror.addMirror({ mirror: mirrorConfig("a", shadowUrl) }, opts);
    failBoomInto("a");
    async function* messages(): AsyncGenerator<{ capture: CaptureInit }> {
      yield { capture: capture("boom-1") };
      yield { capture: capture("bad", { path: "no-slash" }) };
    }
    const error = await rpcError(mirror.captureStream(messages(), opts));
    expect(error).toEqual({ code: Code.Internal, message: "internal error" });
    expect(await counters()).toEqual(["a:0/0"]);
  });
});
