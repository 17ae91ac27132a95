import { describe, expect, it } from "vitest";
import { buildMirrorResult, type ResultContext, type ShadowOutcome } from "../../../server/core/mirror/outcome.js";
import type { MirrorResult } from "../../../server/core/mirror/model.js";
import { mirrorConfig, mirroredRequest, nowMs } from "./builders.js";

const context = (overrides: Partial<ResultContext> = {}): ResultContext => ({
  mirror: mirrorConfig({ ignoreFields: ["ts"] }),
  request: mirroredRequest({ productionResponse: { id: 1, price: 10, ts: 1 } }),
  completedAtMs: nowMs,
  ...overrides,
});

describe("buildMirrorResult", () => {
  it.each<[string, ShadowOutcome, Partial<MirrorResult>]>([
    [
      "an equal 2xx answer (ignored fields aside)",
      { kind: "response", status: 200, latencyMs: 4.4, body: { id: 1, price: 10, ts: 2 } },
      { success: true, errorKind: "none", responseCode: 200, latencyMs: 4, compared: true, diffDetected: false, diffFields: [] },
    ],
    [
      "a differing 2xx answer",
      { kind: "response", status: 201, latencyMs: 5, body: { id: 1, price: 12, ts: 2 } },
      { success: true, compared: true, diffDetected: true, diffFields: ["price"], diffSummary: "1 field differs: price (value_changed 10 → 12)" },
    ],
    [
      "an answer without a body compares as null",
      { kind: "response", status: 204, latencyMs: 1 },
      { success: true, compared: true, diffDetected: true, diffFields: [""] },
    ],
    [
      "a 5xx answer is a failure, not compared",
      { kind: "response", status: 503, latencyMs: 2, body: { error: "down" } },
      { success: false, errorKind: "http_status", responseCode: 503, error: "shadow answered HTTP 503", compared: false, diffDetected: false },
    ],
    [
      "a timeout",
      { kind: "timeout", latencyMs: 1000 },
      { success: false, errorKind: "timeout", error: "no answer within 1000 ms", compared: false, latencyMs: 1000 },
    ],
    [
      "a refused connection",
      { kind: "connection", latencyMs: -1, error: "ECONNREFUSED" },
      { success: false, errorKind: "connection", error: "ECONNREFUSED", latencyMs: 0, compared: false },
    ],
  ])("records %s", (_, outcome, expected) => {
    const result = buildMirrorResult(outcome, context());
    expect(result).toMatchObject({ requestId: "req-1", mirrorId: "orders-shadow", completedAtMs: nowMs, ...expected });
    if (result.errorKind === "timeout" || result.errorKind === "connection") expect(result).not.toHaveProperty("responseCode");
  });

  it("does not compare without a production response", () => {
    const result = buildMirrorResult(
      { kind: "response", status: 200, latencyMs: 1, body: { a: 1 } },
      context({ request: mirroredRequest() }),
    );
    expect(result).toMatchObject({ success: true, compared: false, diffDetected: false, noiseSampled: false });
  });

  it("takes the secondary's differences as the request's noise sample", () => {
    const result = buildMirrorResult(
      { kind: "response", status: 200, latencyMs: 1, body: { id: 2, price: 11, ts: 9 } },
      context({ secondary: { kind: "response", status: 200, latencyMs: 1, body: { id: 2, price: 10, ts: 5 } } }),
    );
    expect(result).toMatchObject({ diffFields: ["id", "price"], noiseFields: ["id"], noiseSampled: true });
  });

  it.each<[string, ShadowOutcome]>([
    ["failed", { kind: "response", status: 500, latencyMs: 1 }],
    ["timed out", { kind: "timeout", latencyMs: 1 }],
  ])("takes no noise sample when the secondary %s", (_, secondary) => {
    const result = buildMirrorResult({ kind: "response", status: 200, latencyMs: 1, body: { id: 1, price: 10 } }, context({ secondary }));
    expect(result).toMatchObject({ noiseSampled: false, noiseFields: [] });
  });
});
