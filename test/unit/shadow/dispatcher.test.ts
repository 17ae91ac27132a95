import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NotFoundError } from "../../../server/core/errors.js";
import { defaultMirrorLimits, type JsonValue } from "../../../server/core/mirror/model.js";
import type { ShadowOutcome } from "../../../server/core/mirror/outcome.js";
import { redactedValue } from "../../../server/core/mirror/redaction.js";
import type { ShadowRequest } from "../../../server/core/mirror/shadow-request.js";
import { Dispatcher, type DispatcherOptions } from "../../../server/shadow/dispatcher.js";
import { ShadowClientClosedError, type ShadowClient } from "../../../server/shadow/http-shadow-client.js";
import { closeDatabase, openDatabase, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";
import { migrations } from "../../../server/store/migrations.js";
import { MirrorStore } from "../../../server/store/mirror-store.js";
import { within } from "../../fixtures/streams.js";
import { capturedRequest, mirrorConfig, nowMs } from "../mirror/builders.js";

/** One send the fake client saw. */
interface Sent {
  readonly request: ShadowRequest;
  /** performance.now() when it was sent. */
  readonly at: number;
  /** The request id, from the JSON payload the builders put there. */
  readonly id: string;
}

/** A controllable deferred outcome. */
interface Pending {
  readonly sent: Sent;
  resolve(outcome: ShadowOutcome): void;
  reject(error: Error): void;
}

/**
 * A ShadowClient that records each send and answers through `answer`
 * (immediately by default; `hold` keeps sends pending until released).
 */
class FakeShadowClient implements ShadowClient {
  readonly sent: Sent[] = [];
  readonly pending: Pending[] = [];
  inFlight = 0;
  maxInFlight = 0;
  hold = false;
  answer: (sent: Sent) => ShadowOutcome = () => ({ kind: "response", status: 200, latencyMs: 1, body: { ok: true } });
  private readonly arrivals = new Set<() => void>();

  send(request: ShadowRequest): Promise<ShadowOutcome> {
    const sent = { request, at: performance.now(), id: (JSON.parse(request.body as string) as { id: string }).id };
    this.sent.push(sent);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    for (const wake of this.arrivals) wake();
    const done = (outcome: ShadowOutcome): ShadowOutcome => {
      this.inFlight--;
      return outcome;
    };
    if (this.closed) return Promise.reject(new ShadowClientClosedError());
    if (!this.hold) return Promise.resolve().then(() => done(this.answer(sent)));
    return new Promise((resolve, reject) =>
      this.pending.push({
        sent,
        resolve: (outcome) => resolve(done(outcome)),
        reject: (error) => {
          done({ kind: "timeout", latencyMs: 0 });
          reject(error);
        },
      }),
    );
  }

  /** Closes like the real client: held sends and later ones reject with ShadowClientClosedError. */
  close(): void {
    this.closed = true;
    for (const pending of this.pending.splice(0)) pending.reject(new ShadowClientClosedError());
  }

  private closed = false;

  /** Resolves once `count` sends happened. */
  async waitForSends(count: number): Promise<void> {
    await within(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (this.sent.length < count) return;
          this.arrivals.delete(check);
          resolve();
        };
        this.arrivals.add(check);
        check();
      }),
      5000,
      `${count} sends`,
    );
  }

  /** Answers every held send with `answer`, newest first (so completion order is the reverse of send order). */
  releaseAll(): void {
    for (const pending of this.pending.splice(0).reverse()) pending.resolve(this.answer(pending.sent));
  }
}

let db: SqliteDatabase;
let committer: GroupCommitter;
let store: MirrorStore;
let client: FakeShadowClient;

function dispatcher(options: DispatcherOptions = {}): Dispatcher {
  return new Dispatcher(store, client, { now: () => nowMs, ...options });
}

/** Captures requests `ids` (the id doubles as payload.id), `spacingMs` apart, with production's response. */
async function captureAll(ids: readonly string[], spacingMs = 0, production: JsonValue = { ok: true }): Promise<void> {
  for (const [i, id] of ids.entries()) {
    await store.capture(
      capturedRequest({
        requestId: id,
        payload: { id },
        mirroredAtMs: nowMs + i * spacingMs,
        headers: { host: "orders.internal", authorization: "Bearer t", "x-session": "s1" },
        productionResponse: production,
      }),
    );
  }
}

const ids = (n: number, prefix = "r"): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

beforeEach(() => {
  db = openDatabase({ path: ":memory:", durability: "full", migrations });
  committer = new GroupCommitter(db);
  store = new MirrorStore(db, committer, { limits: defaultMirrorLimits(), now: () => nowMs });
  client = new FakeShadowClient();
});

afterEach(() => {
  committer.close();
  closeDatabase(db);
});

describe("Dispatcher", () => {
  it("sends the oldest batch, answers results in buffer order whatever the completion order, and records them", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(5));
    client.hold = true;
    const running = dispatcher().dispatch("a", 3, Infinity);
    await client.waitForSends(3);
    client.releaseAll();
    const results = await running;
    expect(results.map((r) => r.requestId)).toEqual(["r1", "r2", "r3"]);
    expect(results.every((r) => r.success && r.mirrorId === "a" && r.compared && !r.diffDetected)).toBe(true);
    expect(store.mirrorStats("a")).toMatchObject({ captured: 5, pending: 2, dispatched: 3, failed: 0, diffs: 0 });
    expect(store.oldest("a", 10).map((b) => b.request.requestId)).toEqual(["r4", "r5"]);
  });

  it("builds each shadow request from the stored, redacted capture", async () => {
    await store.add(mirrorConfig({ mirrorId: "a", shadowEndpoint: "http://shadow.test:8080/api", redactHeaders: ["x-session"], timeoutMs: 321 }));
    await captureAll(["r1"]);
    await dispatcher().dispatch("a", 10, Infinity);
    expect(client.sent[0]!.request).toEqual({
      url: "http://shadow.test:8080/api/orders",
      method: "POST",
      headers: {
        host: "orders.internal-shadow",
        authorization: redactedValue,
        "x-session": redactedValue,
        "x-latticeforge-shadow": "a",
        "content-type": "application/json",
      },
      body: '{"id":"r1"}',
      timeoutMs: 321,
    });
  });

  it("keeps at most `concurrency` requests in flight", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(10));
    client.hold = true;
    const running = dispatcher({ concurrency: 3 }).dispatch("a", 10, Infinity);
    for (let answered = 0; answered < 10; ) {
      await client.waitForSends(Math.min(10, answered + 3));
      expect(client.inFlight).toBeLessThanOrEqual(3);
      const batch = client.pending.splice(0);
      answered += batch.length;
      for (const pending of batch) pending.resolve(client.answer(pending.sent));
    }
    await running;
    expect(client.maxInFlight).toBe(3);
    expect(client.sent.map((s) => s.id)).toEqual(ids(10));
  });

  it("records failures by kind, diffs against production's response and leaves nothing buffered", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(4), 0, { total: 10 });
    const outcomes: Record<string, ShadowOutcome> = {
      r1: { kind: "response", status: 200, latencyMs: 2.6, body: { total: 11 } },
      r2: { kind: "timeout", latencyMs: 50 },
      r3: { kind: "connection", latencyMs: 1, error: "ECONNREFUSED" },
      r4: { kind: "response", status: 503, latencyMs: 1 },
    };
    client.answer = (sent) => outcomes[sent.id]!;
    const results = await dispatcher().dispatch("a", 10, Infinity);
    expect(results.map((r) => [r.requestId, r.success, r.errorKind, r.responseCode, r.diffFields])).toEqual([
      ["r1", true, "none", 200, ["total"]],
      ["r2", false, "timeout", undefined, []],
      ["r3", false, "connection", undefined, []],
      ["r4", false, "http_status", 503, []],
    ]);
    expect(results[0]!.latencyMs).toBe(3);
    expect(results[2]!.error).toBe("ECONNREFUSED");
    expect(store.mirrorStats("a")).toMatchObject({ pending: 0, dispatched: 4, failed: 3, diffs: 1 });
    expect(store.tally("a").failures).toEqual({ timeout: 1, connection: 1, http_status: 1 });
  });

  it("sends each request to the secondary too and records where production differs from itself as noise", async () => {
    await store.add(mirrorConfig({ mirrorId: "a", shadowEndpoint: "http://shadow:1", secondaryEndpoint: "http://secondary:2" }));
    await captureAll(ids(2), 0, { total: 10, at: "t0" });
    client.answer = (sent) =>
      sent.request.url.startsWith("http://shadow")
        ? { kind: "response", status: 200, latencyMs: 1, body: { total: 11, at: "t1" } }
        : sent.id === "r1"
          ? { kind: "response", status: 200, latencyMs: 1, body: { total: 10, at: "t2" } }
          : { kind: "timeout", latencyMs: 5 };
    const results = await dispatcher().dispatch("a", 10, Infinity);
    expect(client.sent.map((s) => new URL(s.request.url).host).sort()).toEqual(["secondary:2", "secondary:2", "shadow:1", "shadow:1"]);
    expect(client.sent.every((s) => s.request.headers["x-latticeforge-shadow"] === "a")).toBe(true);
    expect(results.map((r) => [r.diffFields, r.noiseFields, r.noiseSampled])).toEqual([
      [["at", "total"], ["at"], true],
      // A failed secondary gives no noise sample; the shadow's result stands.
      [["at", "total"], [], false],
    ]);
    expect(results.every((r) => r.success && r.shadowEndpoint === "http://shadow:1")).toBe(true);
    expect(store.tally("a")).toMatchObject({ compared: 2, noiseSamples: 1 });
    expect(store.tally("a").fields.get("at")).toMatchObject({ candidateDiffs: 2, noiseDiffs: 1 });
  });

  it("paces a REPLAY batch at the captured spacing divided by the rate multiplier", async () => {
    await store.add(mirrorConfig({ mirrorId: "replay", mode: "replay" }));
    // Captured 0, 100 and 300 ms apart; replayed twice as fast: 0, 50, 150.
    for (const [id, at] of [["r1", 0], ["r2", 100], ["r3", 300]] as const) {
      await store.capture(capturedRequest({ requestId: id, payload: { id }, mirroredAtMs: nowMs + at }));
    }
    await dispatcher().dispatch("replay", 10, 2);
    const offsets = client.sent.map((s) => s.at - client.sent[0]!.at);
    expect(client.sent.map((s) => s.id)).toEqual(["r1", "r2", "r3"]);
    expect(offsets[1]).toBeGreaterThanOrEqual(48);
    expect(offsets[1]).toBeLessThan(100);
    expect(offsets[2]).toBeGreaterThanOrEqual(148);
    expect(offsets[2]).toBeLessThan(250);
  });

  it("sends a REPLAY batch at once without a rate multiplier, and caps long gaps at maxReplayWaitMs", async () => {
    await store.add(mirrorConfig({ mirrorId: "replay", mode: "replay" }));
    for (const [id, at] of [["r1", 0], ["r2", 60_000], ["r3", 120_000]] as const) {
      await store.capture(capturedRequest({ requestId: id, payload: { id }, mirroredAtMs: nowMs + at }));
    }
    const started = performance.now();
    await dispatcher({ maxReplayWaitMs: 30 }).dispatch("replay", 2, 1);
    const capped = client.sent.map((s) => s.at - started);
    expect(capped[1]! - capped[0]!).toBeGreaterThanOrEqual(28);
    expect(capped[1]! - capped[0]!).toBeLessThan(500);
    const fast = performance.now();
    await dispatcher().dispatch("replay", 10, Infinity);
    expect(performance.now() - fast).toBeLessThan(500);
    expect(client.sent.map((s) => s.id)).toEqual(["r1", "r2", "r3"]);
  });

  it("ignores the rate multiplier for a mirror that is not REPLAY", async () => {
    await store.add(mirrorConfig({ mirrorId: "full" }));
    for (const [id, at] of [["r1", 0], ["r2", 5_000]] as const) {
      await store.capture(capturedRequest({ requestId: id, payload: { id }, mirroredAtMs: nowMs + at }));
    }
    const started = performance.now();
    await dispatcher().dispatch("full", 10, 1);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(client.sent).toHaveLength(2);
  });

  it("runs dispatches of one mirror one after another, so no request is sent twice", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(6));
    client.hold = true;
    const d = dispatcher();
    const first = d.dispatch("a", 4, Infinity);
    const second = d.dispatch("a", 4, Infinity);
    await client.waitForSends(4);
    // The second call waits for the first: nothing of it is in flight yet.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(client.sent).toHaveLength(4);
    client.releaseAll();
    await client.waitForSends(6);
    client.releaseAll();
    const [a, b] = await Promise.all([first, second]);
    expect(a.map((r) => r.requestId)).toEqual(["r1", "r2", "r3", "r4"]);
    expect(b.map((r) => r.requestId)).toEqual(["r5", "r6"]);
    expect(client.sent.map((s) => s.id)).toEqual(ids(6));
    expect(store.mirrorStats("a")).toMatchObject({ pending: 0, dispatched: 6 });
  });

  it("runs dispatches of different mirrors side by side", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await store.add(mirrorConfig({ mirrorId: "b" }));
    await captureAll(ids(2));
    client.hold = true;
    const d = dispatcher();
    const both = Promise.all([d.dispatch("a", 10, Infinity), d.dispatch("b", 10, Infinity)]);
    await client.waitForSends(4);
    client.releaseAll();
    const [a, b] = await both;
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(2);
  });

  it("lets the next dispatch run after one failed", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(2));
    client.answer = () => {
      throw new Error("client bug");
    };
    const d = dispatcher();
    await expect(d.dispatch("a", 10, Infinity)).rejects.toThrow("client bug");
    expect(store.pendingCount("a")).toBe(2);
    client.answer = () => ({ kind: "response", status: 200, latencyMs: 1 });
    expect((await d.dispatch("a", 10, Infinity)).map((r) => r.requestId)).toEqual(["r1", "r2"]);
    expect(store.pendingCount("a")).toBe(0);
  });

  it("records what was answered when the client closes mid-dispatch, keeps the rest buffered, and fails with UNAVAILABLE", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(10));
    client.hold = true;
    const dispatching = dispatcher({ concurrency: 4 }).dispatch("a", 10, Infinity);
    await client.waitForSends(4);
    // Two answers arrive, then the server shuts down with the others in flight.
    for (const pending of client.pending.splice(0, 2)) pending.resolve({ kind: "response", status: 200, latencyMs: 1, body: { ok: true } });
    await client.waitForSends(6);
    client.close();
    await expect(dispatching).rejects.toBeInstanceOf(ShadowClientClosedError);
    expect(store.mirrorStats("a")).toMatchObject({ dispatched: 2, failed: 0 });
    expect(store.pendingCount("a")).toBe(8);
    // A shutdown is not a shadow failure: nothing was recorded as one, and the rest goes out next time.
    client = new FakeShadowClient();
    const rest = await dispatcher().dispatch("a", 10, Infinity);
    expect(rest).toHaveLength(8);
    expect(store.pendingCount("a")).toBe(0);
  });

  it("answers an empty buffer with no results and no sends", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    expect(await dispatcher().dispatch("a", 10, Infinity)).toEqual([]);
    expect(client.sent).toHaveLength(0);
    expect(store.mirrorStats("a").dispatched).toBe(0);
  });

  it("throws NOT_FOUND for an unknown mirror", () => {
    expect(() => dispatcher().dispatch("nope", 10, Infinity)).toThrow(NotFoundError);
  });

  it("returns the results but records nothing when the mirror is removed mid-dispatch", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(2));
    client.hold = true;
    const running = dispatcher().dispatch("a", 10, Infinity);
    await client.waitForSends(2);
    await store.remove("a");
    client.releaseAll();
    expect(await running).toHaveLength(2);
    expect(store.mirrors()).toEqual([]);
  });

  it("does not count a removed mirror's results into a mirror re-added under the same id meanwhile", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(2));
    client.hold = true;
    const running = dispatcher().dispatch("a", 10, Infinity);
    await client.waitForSends(2);
    await store.remove("a");
    await store.add(mirrorConfig({ mirrorId: "a", createdAtMs: nowMs + 1 }));
    await captureAll(["r9"]);
    client.releaseAll();
    expect(await running).toHaveLength(2);
    expect(store.mirrorStats("a")).toEqual({ captured: 1, dropped: 0, pending: 1, dispatched: 0, failed: 0, diffs: 0 });
    expect(store.tally("a").results).toBe(0);
    expect((await store.drain("a", 10)).map((r) => r.requestId)).toEqual(["r9"]);
  });

  it("does not count a request twice when a Drain takes it while it is being sent", async () => {
    await store.add(mirrorConfig({ mirrorId: "a" }));
    await captureAll(ids(3));
    client.hold = true;
    const running = dispatcher().dispatch("a", 3, Infinity);
    await client.waitForSends(3);
    expect((await store.drain("a", 3)).map((r) => r.requestId)).toEqual(["r1", "r2", "r3"]);
    await captureAll(["r4"]);
    client.releaseAll();
    await running;
    expect(store.mirrorStats("a")).toMatchObject({ captured: 4, pending: 1, dispatched: 3 });
    expect((await store.drain("a", 10)).map((r) => r.requestId)).toEqual(["r4"]);
  });
});
