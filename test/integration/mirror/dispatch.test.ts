import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  DispatchError,
  FieldVerdict,
  MirrorMode,
  MirrorService,
  type MirrorResult,
} from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import {
  callOptions as opts,
  capture,
  closedPort,
  jsonValue,
  mirrorConfig,
  orderService,
  productionOrder,
  startShadow,
  traceparentA,
  type CaptureInit,
  type MirrorClient,
  type MirrorConfigInit,
  type TestShadow,
} from "../../fixtures/mirror.js";
import { within } from "../../fixtures/streams.js";
import { rpcError } from "../../fixtures/tracing.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A capture of order `requestId` for `qty` items, carrying production's response (unless `production` is false). */
function order(requestId: string, qty = 1, overrides: Partial<CaptureInit> & { production?: boolean } = {}): CaptureInit {
  const { production = true, ...rest } = overrides;
  return capture(requestId, {
    payload: { orderId: requestId, qty },
    headers: {
      host: "orders.internal:8443",
      authorization: "Bearer s3cr3t",
      cookie: "sid=42",
      "x-session": "abc",
      "x-tenant": "t1",
      traceparent: traceparentA,
      connection: "keep-alive, x-hop",
      "x-hop": "proxy-only",
    },
    ...(production ? { productionResponse: jsonValue(productionOrder(requestId, qty)) } : {}),
    ...rest,
  });
}

/** The parts of a result that do not depend on timing. */
function outcome(result: MirrorResult) {
  return {
    requestId: result.requestId,
    success: result.success,
    error: result.error,
    responseCode: result.responseCode,
    compared: result.compared,
    diffDetected: result.diffDetected,
    diffFields: result.diffFields,
    noiseFields: result.noiseFields,
  };
}

describe.each(["grpc", "connect"] as const)("MirrorService dispatch over %s", (transport) => {
  let server: TestControlPlane;
  let mirror: MirrorClient;
  let candidate: TestShadow;
  let secondary: TestShadow;
  let refusedUrl: string;
  beforeAll(async () => {
    server = await startTestControlPlane();
    mirror = transport === "grpc" ? server.grpc(MirrorService) : server.http(MirrorService);
    candidate = await startShadow(orderService("candidate"));
    secondary = await startShadow(orderService("production"));
    refusedUrl = `http://127.0.0.1:${await closedPort()}`;
  });
  afterAll(async () => {
    await server.stop();
    await candidate.close();
    await secondary.close();
  });
  beforeEach(async () => {
    for (const { mirrorId } of (await mirror.listMirrors({}, opts)).mirrors) await mirror.removeMirror({ mirrorId }, opts);
    candidate.hits.length = 0;
    secondary.hits.length = 0;
  });

  const add = (mirrorId: string, overrides: Partial<MirrorConfigInit> = {}, endpoint = candidate.url) =>
    mirror.addMirror({ mirror: mirrorConfig(mirrorId, endpoint, overrides) }, opts);
  const captureAll = async (captures: CaptureInit[]) => {
    for (const item of captures) await mirror.capture(item, opts);
  };
  const stats = async (mirrorId: string) => (await mirror.stats({}, opts)).mirrors.find((m) => m.mirrorId === mirrorId)!;

  async function invalid(promise: Promise<unknown>): Promise<string> {
    const error = await rpcError(promise);
    expect(error.code, error.message).toBe(Code.InvalidArgument);
    return error.message;
  }

  it("records a success when the shadow answers 2xx like production", async () => {
    await add("m");
    await captureAll([order("o-1", 1), order("o-2", 2)]);
    const { results } = await mirror.dispatch({ mirrorId: "m" }, opts);
    expect(results.map(outcome)).toEqual([
      { requestId: "o-1", success: true, error: DispatchError.UNSPECIFIED, responseCode: 200, compared: true, diffDetected: true, diffFields: ["generatedAt"], noiseFields: [] },
      { requestId: "o-2", success: true, error: DispatchError.UNSPECIFIED, responseCode: 200, compared: true, diffDetected: true, diffFields: ["generatedAt"], noiseFields: [] },
    ]);
    expect(results[0]).toMatchObject({ mirrorId: "m", shadowEndpoint: candidate.url, errorMessage: "" });
    expect(results[0]!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(results[0]!.diffSummary).toMatch(/^1 field differs: generatedAt \(value_changed "2026-01-01T00:00:00.000Z" → "/);
    expect(await stats("m")).toMatchObject({ captured: 2n, pending: 0n, dispatched: 2n, failed: 0n, diffs: 2n });
  });

  it("finds no diff when ignore_fields covers the noisy field, and reports the real one", async () => {
    await add("m", { ignoreFields: ["generatedAt"] });
    await captureAll([order("o-1", 1), order("o-3", 3)]);
    const { results } = await mirror.dispatch({ mirrorId: "m" }, opts);
    expect(results.map((r) => [r.requestId, r.diffDetected, r.diffFields, r.diffSummary])).toEqual([
      ["o-1", false, [], undefined],
      ["o-3", true, ["total"], "1 field differs: total (value_changed 30 → 31)"],
    ]);
    expect(await stats("m")).toMatchObject({ dispatched: 2n, diffs: 1n });
  });

  it("does not compare when the capture carried no production response", async () => {
    await add("m");
    await captureAll([order("o-1", 1, { production: false })]);
    const [result] = (await mirror.dispatch({ mirrorId: "m" }, opts)).results;
    expect(outcome(result!)).toMatchObject({ success: true, compared: false, diffDetected: false, diffFields: [] });
  });

  it("compares a non-JSON shadow answer as text: a type change at the top level", async () => {
    await add("m");
    await captureAll([order("o-1", 1, { path: "/text" })]);
    const [result] = (await mirror.dispatch({ mirrorId: "m" }, opts)).results;
    expect(result).toMatchObject({ success: true, compared: true, diffDetected: true, diffFields: [""] });
    expect(result!.diffSummary).toBe("1 field differs: (top level) (type_changed object → string)");
  });

  it("records a timeout when the shadow does not answer within timeout_ms, without waiting longer", async () => {
    await add("m", { timeoutMs: 150 });
    await captureAll([order("t-1", 1, { path: "/hang" }), order("t-2", 1, { path: "/hang" }), order("t-3", 1, { path: "/hang" })]);
    const started = performance.now();
    const { results } = await mirror.dispatch({ mirrorId: "m" }, opts);
    expect(performance.now() - started).toBeLessThan(2000);
    for (const result of results) {
      expect(outcome(result)).toMatchObject({ success: false, error: DispatchError.TIMEOUT, responseCode: undefined, compared: false });
      expect(result.latencyMs).toBeGreaterThanOrEqual(149);
      expect(result.errorMessage).toMatch(/^no answer within 1\d\d ms$/);
    }
    expect(await stats("m")).toMatchObject({ pending: 0n, dispatched: 3n, failed: 3n, diffs: 0n });
  });

  it("records a refused connection with ECONNREFUSED", async () => {
    await add("m", {}, refusedUrl);
    await captureAll([order("c-1")]);
    const [result] = (await mirror.dispatch({ mirrorId: "m" }, opts)).results;
    expect(outcome(result!)).toMatchObject({ success: false, error: DispatchError.CONNECTION, responseCode: undefined, compared: false });
    expect(result!.errorMessage).toBe("ECONNREFUSED");
    expect(result!.shadowEndpoint).toBe(refusedUrl);
  });

  it("records a non-2xx answer as HTTP_STATUS with the status", async () => {
    await add("m");
    await captureAll([order("f-1", 1, { path: "/fail" })]);
    const [result] = (await mirror.dispatch({ mirrorId: "m" }, opts)).results;
    expect(outcome(result!)).toMatchObject({ success: false, error: DispatchError.HTTP_STATUS, responseCode: 503, compared: false });
    expect(result!.errorMessage).toBe("shadow answered HTTP 503");
  });

  it("answers a mixed batch in buffer order and counts failures by kind", async () => {
    await add("m", { timeoutMs: 150, ignoreFields: ["generatedAt"] });
    await captureAll([order("a", 1), order("b", 1, { path: "/hang" }), order("c", 1, { path: "/fail" }), order("d", 4)]);
    const { results } = await mirror.dispatch({ mirrorId: "m" }, opts);
    expect(results.map((r) => [r.requestId, r.error])).toEqual([
      ["a", DispatchError.UNSPECIFIED],
      ["b", DispatchError.TIMEOUT],
      ["c", DispatchError.HTTP_STATUS],
      ["d", DispatchError.UNSPECIFIED],
    ]);
    expect(await stats("m")).toMatchObject({ dispatched: 4n, failed: 2n, diffs: 1n });
    const analysis = await mirror.analyzeDiffs({ mirrorId: "m" }, opts);
    expect(analysis).toMatchObject({ results: 4n, compared: 2n, failed: 2n, diffRequests: 1n, diffRate: 0.5 });
    expect(analysis.failures).toEqual({ timeout: 1n, connection: 0n, http_status: 1n });
    expect(analysis.recommendations[0]).toBe(
      "50.00% of shadow requests failed (timeout 1, connection 0, http_status 1): check the shadow's health and timeout_ms before trusting its diffs.",
    );
  });

  it("sends the mirrored request with the -shadow Host, the marker header, the traceparent and credentials redacted", async () => {
    await add("m-redact", { redactHeaders: ["x-session"] });
    await captureAll([order("h-1", 2, { method: "PUT", path: "/orders?source=test" })]);
    await mirror.dispatch({ mirrorId: "m-redact" }, opts);
    const [hit] = candidate.hits;
    expect(hit).toMatchObject({ method: "PUT", url: "/orders?source=test" });
    expect(JSON.parse(hit!.text)).toEqual({ orderId: "h-1", qty: 2 });
    expect(hit!.headers).toMatchObject({
      host: "orders.internal-shadow:8443",
      "x-latticeforge-shadow": "m-redact",
      traceparent: traceparentA,
      authorization: "[REDACTED]",
      cookie: "[REDACTED]",
      "x-session": "[REDACTED]",
      "x-tenant": "t1",
      "content-type": "application/json",
    });
    // Headers scoped to the captured connection (named in its Connection header) stay behind.
    expect(hit!.headers["x-hop"]).toBeUndefined();
  });

  it("records a header value node:http refuses to send as a failed result instead of failing every Dispatch", async () => {
    await add("m", { ignoreFields: ["generatedAt"] });
    await captureAll([capture("euro", { headers: { "x-note": "price in \u20ac" } }), order("after", 1)]);
    const { results } = await mirror.dispatch({ mirrorId: "m" }, opts);
    expect(results.map((r) => [r.requestId, r.error, r.errorMessage])).toEqual([
      ["euro", DispatchError.CONNECTION, "ERR_INVALID_CHAR"],
      ["after", DispatchError.UNSPECIFIED, ""],
    ]);
    expect(await stats("m")).toMatchObject({ pending: 0n, dispatched: 2n, failed: 1n });
    expect(candidate.hits.map((h) => JSON.parse(h.text).orderId as string)).toEqual(["after"]);
  });

  it("neither counts twice nor loses a request when a Drain empties the buffer during a Dispatch", async () => {
    await add("m", { ignoreFields: ["generatedAt"] });
    await captureAll([order("d-1", 1, { path: "/slow" }), order("d-2", 1, { path: "/slow" })]);
    const dispatching = mirror.dispatch({ mirrorId: "m" }, opts);
    await candidate.waitForHits(2);
    expect((await mirror.drain({ mirrorId: "m" }, opts)).requests.map((r) => r.requestId)).toEqual(["d-1", "d-2"]);
    await mirror.capture(order("d-3"), opts);
    expect((await dispatching).results.map((r) => [r.requestId, r.success])).toEqual([
      ["d-1", true],
      ["d-2", true],
    ]);
    expect(await stats("m")).toMatchObject({ captured: 3n, pending: 1n, dispatched: 2n });
    expect((await mirror.drain({ mirrorId: "m" }, opts)).requests.map((r) => r.requestId)).toEqual(["d-3"]);
  });

  it("sends a raw body byte for byte instead of the payload", async () => {
    await add("m");
    await captureAll([capture("raw-1", { body: new Uint8Array([0x00, 0xc3, 0x28, 0xff]), headers: { "content-type": "application/octet-stream" } })]);
    const [result] = (await mirror.dispatch({ mirrorId: "m" }, opts)).results;
    expect([...candidate.hits[0]!.body]).toEqual([0x00, 0xc3, 0x28, 0xff]);
    expect(result).toMatchObject({ success: false, error: DispatchError.HTTP_STATUS, responseCode: 400 });
    expect(candidate.hits[0]!.headers["content-type"]).toBe("application/octet-stream");
  });

  it("sends at most batch_size requests (default 50), oldest first, and leaves the rest pending", async () => {
    await add("m", { bufferSize: 200 });
    await captureAll(Array.from({ length: 60 }, (_, i) => order(`b-${i}`, 1, { production: false })));
    const first = await mirror.dispatch({ mirrorId: "m", batchSize: 0 }, opts);
    expect(first.results).toHaveLength(50);
    expect(first.results[0]!.requestId).toBe("b-0");
    expect(Number((await mirror.pendingCount({ mirrorId: "m" }, opts)).pending)).toBe(10);
    const second = await mirror.dispatch({ mirrorId: "m", batchSize: 3 }, opts);
    expect(second.results.map((r) => r.requestId)).toEqual(["b-50", "b-51", "b-52"]);
    expect((await mirror.dispatch({ mirrorId: "m", batchSize: 100 }, opts)).results).toHaveLength(7);
    expect((await mirror.dispatch({ mirrorId: "m" }, opts)).results).toEqual([]);
    expect(new Set(candidate.hits.map((h) => JSON.parse(h.text).orderId as string)).size).toBe(60);
  });

  it("refuses a bad batch_size or rate_multiplier naming it", async () => {
    await add("m");
    expect(await invalid(mirror.dispatch({ mirrorId: "m", batchSize: 10_001 }, opts))).toBe("batch_size must be an integer in 1..10000 (0 for 50), got 10001");
    expect(await invalid(mirror.dispatch({ mirrorId: "m", batchSize: -2 }, opts))).toMatch(/^batch_size /);
    expect(await invalid(mirror.dispatch({ mirrorId: "m", rateMultiplier: -1 }, opts))).toBe("rate_multiplier must be in (0, 1000], got -1");
    expect(await invalid(mirror.dispatch({ mirrorId: "m", rateMultiplier: 1001 }, opts))).toMatch(/^rate_multiplier /);
    expect(await invalid(mirror.dispatch({ mirrorId: "m", rateMultiplier: Number.NaN }, opts))).toMatch(/^rate_multiplier /);
  });

  it("replays a REPLAY mirror at the captured spacing divided by rate_multiplier", async () => {
    await add("replay", { mode: MirrorMode.REPLAY, ignoreFields: ["generatedAt"] });
    await mirror.capture(order("p-0"), opts);
    await sleep(150);
    await mirror.capture(order("p-1"), opts);
    await sleep(300);
    await mirror.capture(order("p-2"), opts);
    const drained = (await mirror.dispatch({ mirrorId: "replay", batchSize: 3, rateMultiplier: 3 }, opts)).results;
    expect(drained.map((r) => [r.requestId, r.success, r.diffDetected])).toEqual([
      ["p-0", true, false],
      ["p-1", true, false],
      ["p-2", true, false],
    ]);
    const hits = candidate.hits.slice(-3);
    expect(hits.map((h) => JSON.parse(h.text).orderId as string)).toEqual(["p-0", "p-1", "p-2"]);
    const gap1 = hits[1]!.at - hits[0]!.at;
    const gap2 = hits[2]!.at - hits[1]!.at;
    // 150 ms and 300 ms captured, three times as fast: 50 ms and 100 ms.
    expect(gap1).toBeGreaterThanOrEqual(45);
    expect(gap1).toBeLessThan(140);
    expect(gap2).toBeGreaterThanOrEqual(95);
    expect(gap2).toBeLessThan(250);
  });

  it("replays as fast as possible without a rate_multiplier", async () => {
    await add("replay", { mode: MirrorMode.REPLAY });
    await mirror.capture(order("q-0"), opts);
    await sleep(400);
    await mirror.capture(order("q-1"), opts);
    const started = performance.now();
    await mirror.dispatch({ mirrorId: "replay" }, opts);
    expect(performance.now() - started).toBeLessThan(300);
  });

  it("sends each request to the secondary too and tells noise from a real regression in AnalyzeDiffs", async () => {
    await add("diffy", { secondaryEndpoint: secondary.url, bufferSize: 100 });
    // qty 1..4: the candidate gets total wrong for qty 3 and 4 (10 of 20 requests).
    const captures = Array.from({ length: 20 }, (_, i) => order(`n-${String(i).padStart(2, "0")}`, (i % 4) + 1));
    await captureAll(captures);
    const { results } = await mirror.dispatch({ mirrorId: "diffy" }, opts);
    expect(secondary.hits).toHaveLength(20);
    expect(secondary.hits.every((h) => h.headers["x-latticeforge-shadow"] === "diffy" && h.headers.authorization === "[REDACTED]")).toBe(true);
    expect(results[0]).toMatchObject({ requestId: "n-00", diffFields: ["generatedAt"], noiseFields: ["generatedAt"], shadowEndpoint: candidate.url });
    expect(results[2]).toMatchObject({ requestId: "n-02", diffFields: ["generatedAt", "total"], noiseFields: ["generatedAt"] });

    const analysis = await mirror.analyzeDiffs({ mirrorId: "diffy" }, opts);
    expect(analysis).toMatchObject({
      results: 20n,
      compared: 20n,
      failed: 0n,
      diffRequests: 20n,
      diffRate: 1,
      threshold: 0.05,
      alert: true,
      mostDifferingFields: ["total"],
      noiseFields: ["generatedAt"],
      noiseMeasured: true,
    });
    expect(analysis.fields.map((f) => [f.field, f.candidateDiffs, f.noiseDiffs, f.diffRate, f.verdict])).toEqual([
      ["generatedAt", 20n, 20n, 1, FieldVerdict.NOISE],
      ["total", 10n, 0n, 0.5, FieldVerdict.REPORTED],
    ]);
    expect(analysis.fields[1]!.exampleRequestIds).toEqual(["n-02", "n-03", "n-06", "n-07", "n-10"]);
    expect(analysis.recommendations).toEqual([
      "Diff rate 100.00% exceeds the 5.00% threshold: investigate total (10 requests) before promoting the shadow.",
      "Non-deterministic fields (noise): add generatedAt to ignore_fields to keep them out of diffs.",
    ]);
    expect(await stats("diffy")).toMatchObject({ dispatched: 20n, failed: 0n, diffs: 20n });
  });

  it("does not alert when every differing field is noise, and honours threshold and noise options", async () => {
    await add("quiet", { secondaryEndpoint: secondary.url });
    await captureAll(Array.from({ length: 8 }, (_, i) => order(`q-${i}`, 1)));
    await mirror.dispatch({ mirrorId: "quiet" }, opts);
    const analysis = await mirror.analyzeDiffs({ mirrorId: "quiet" }, opts);
    expect(analysis).toMatchObject({ diffRate: 1, alert: false, mostDifferingFields: [], noiseFields: ["generatedAt"] });
    expect(analysis.recommendations[0]).toBe(
      "Diff rate 100.00% exceeds the 5.00% threshold, but every differing field is within noise: no regression is indicated.",
    );
    const lenient = await mirror.analyzeDiffs({ mirrorId: "quiet", threshold: 1 }, opts);
    expect(lenient.threshold).toBe(1);
    expect(lenient.recommendations.at(-1)).toBe("Diff rate 100.00% is within the 100.00% threshold.");
    expect(await invalid(mirror.analyzeDiffs({ mirrorId: "quiet", threshold: 1.5 }, opts))).toBe("threshold must be in [0, 1], got 1.5");
    expect(await invalid(mirror.analyzeDiffs({ mirrorId: "quiet", noiseRelative: -1 }, opts))).toBe("noise_relative must be in [0, 1], got -1");
    expect(await invalid(mirror.analyzeDiffs({ mirrorId: "quiet", noiseAbsolute: 2 }, opts))).toBe("noise_absolute must be in [0, 1], got 2");
  });

  it("recommends a noise baseline when there is none, and says when there are no results yet", async () => {
    await add("plain");
    expect((await mirror.analyzeDiffs({ mirrorId: "plain" }, opts)).recommendations).toEqual([
      "No mirror results yet: dispatch captured requests to the shadow, then analyse again.",
    ]);
    await captureAll([order("x-1", 3)]);
    await mirror.dispatch({ mirrorId: "plain" }, opts);
    const analysis = await mirror.analyzeDiffs({ mirrorId: "plain" }, opts);
    expect(analysis).toMatchObject({ noiseMeasured: false, alert: true, mostDifferingFields: ["generatedAt", "total"] });
    expect(analysis.recommendations).toContain(
      "No noise baseline: set secondary_endpoint (same code as production) so non-deterministic fields are cancelled.",
    );
  });

  it("runs overlapping Dispatch calls of one mirror one after another, sending no request twice", async () => {
    await add("m", { bufferSize: 500, ignoreFields: ["generatedAt"] });
    await captureAll(Array.from({ length: 40 }, (_, i) => order(`o-${i}`)));
    const calls = await Promise.all(Array.from({ length: 4 }, () => mirror.dispatch({ mirrorId: "m", batchSize: 15 }, opts)));
    const sent = calls.flatMap((c) => c.results.map((r) => r.requestId));
    expect(sent.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `o-${i}`).sort());
    expect(candidate.hits).toHaveLength(40);
    expect(await stats("m")).toMatchObject({ pending: 0n, dispatched: 40n });
  });

  it("keeps capturing at full speed while a dispatch waits on a shadow that hangs", async () => {
    await add("slow", { timeoutMs: 1500 });
    await captureAll([order("slow-1", 1, { path: "/hang" })]);
    const dispatching = mirror.dispatch({ mirrorId: "slow" }, opts);
    await candidate.waitForHits(1);
    const started = performance.now();
    for (let i = 0; i < 20; i++) await mirror.capture(order(`fast-${i}`), opts);
    expect(performance.now() - started).toBeLessThan(1000);
    const { results } = await within(dispatching, 5000, "dispatch");
    expect(results.map((r) => r.error)).toEqual([DispatchError.TIMEOUT]);
    expect(Number((await mirror.pendingCount({ mirrorId: "slow" }, opts)).pending)).toBe(20);
  });

  it("reuses keep-alive connections to the shadow across dispatches", async () => {
    await add("m", { bufferSize: 500 });
    const connectionsBefore = candidate.connections;
    for (let round = 0; round < 3; round++) {
      await captureAll(Array.from({ length: 10 }, (_, i) => order(`k-${round}-${i}`, 1, { production: false })));
      await mirror.dispatch({ mirrorId: "m" }, opts);
    }
    expect(candidate.hits).toHaveLength(30);
    expect(candidate.connections - connectionsBefore).toBeLessThanOrEqual(10);
  });

  it("forgets a removed mirror's buffer and results", async () => {
    await add("gone");
    await captureAll([order("g-1"), order("g-2")]);
    await mirror.dispatch({ mirrorId: "gone", batchSize: 1 }, opts);
    await mirror.removeMirror({ mirrorId: "gone" }, opts);
    await add("gone");
    expect(await stats("gone")).toMatchObject({ captured: 0n, pending: 0n, dispatched: 0n, diffs: 0n });
    expect((await mirror.analyzeDiffs({ mirrorId: "gone" }, opts)).results).toBe(0n);
    expect((await mirror.drain({ mirrorId: "gone" }, opts)).requests).toEqual([]);
  });
});
