import type { CaptureInput, MirrorConfigInput } from "../../../server/core/mirror/validation.js";
import {
  encodeCapturePayload,
  type EncodedCapture,
  type MirrorConfig,
  type MirroredRequest,
  type MirrorResult,
} from "../../../server/core/mirror/model.js";

/** The error a call throws, and a seeded PRNG (shared with the registry tests). */
export { mulberry32, thrown } from "../registry/builders.js";

/** An arbitrary fixed "now" for tests, in epoch milliseconds. */
export const nowMs = 1_700_000_000_000;

/** A trace id every builder uses unless told otherwise. */
export const traceA = "4bf92f3577b34da6a3ce929d0e0e4736";

/** A valid, enabled FULL mirror of `orders`; override any field. */
export function mirrorConfig(overrides: Partial<MirrorConfig> = {}): MirrorConfig {
  return {
    mirrorId: "orders-shadow",
    sourceService: "orders",
    shadowEndpoint: "http://127.0.0.1:9090",
    mode: "full",
    sampleRate: 0,
    includeIntents: [],
    excludeIntents: [],
    timeoutMs: 1000,
    enabled: true,
    createdAtMs: nowMs,
    bufferSize: 1000,
    ignoreFields: [],
    redactHeaders: [],
    secondaryEndpoint: "",
    ...overrides,
  };
}

/** A valid AddMirror input for a FULL mirror; override any field. */
export function configInput(overrides: Partial<MirrorConfigInput> = {}): MirrorConfigInput {
  return {
    mirrorId: "orders-shadow",
    sourceService: "orders",
    shadowEndpoint: "http://127.0.0.1:9090",
    mode: "full",
    timeoutMs: 1000,
    ...overrides,
  };
}

/** A valid Capture input; override any field. */
export function captureInput(overrides: Partial<CaptureInput> = {}): CaptureInput {
  return {
    requestId: "req-1",
    traceId: traceA,
    sourceService: "orders",
    intent: "create_order",
    payload: { sku: "A-1", qty: 2 },
    headers: { "content-type": "application/json" },
    method: "POST",
    path: "/orders",
    ...overrides,
  };
}

/** A mirrored request as validation would produce it; override any field. */
export function mirroredRequest(overrides: Partial<MirroredRequest> = {}): MirroredRequest {
  return {
    requestId: "req-1",
    traceId: traceA,
    sourceService: "orders",
    intent: "create_order",
    payload: { sku: "A-1", qty: 2 },
    headers: {},
    method: "POST",
    path: "/orders",
    mirroredAtMs: nowMs,
    ...overrides,
  };
}

/** {@link mirroredRequest} as the store takes it, its payload encoded; override any field. */
export function capturedRequest(overrides: Partial<MirroredRequest> = {}): EncodedCapture {
  return encodeCapturePayload(mirroredRequest(overrides));
}

/** A compared, successful result without diffs; override any field. */
export function mirrorResult(overrides: Partial<MirrorResult> = {}): MirrorResult {
  return {
    requestId: "req-1",
    mirrorId: "orders-shadow",
    shadowEndpoint: "http://127.0.0.1:9090",
    success: true,
    latencyMs: 3,
    responseCode: 200,
    errorKind: "none",
    compared: true,
    diffDetected: false,
    diffFields: [],
    noiseFields: [],
    noiseSampled: false,
    completedAtMs: nowMs,
    ...overrides,
  };
}

/** A compared result whose candidate diffs are `diffFields` (and noise `noiseFields`, sampled when given). */
export function diffResult(requestId: string, diffFields: string[], noiseFields?: string[]): MirrorResult {
  return mirrorResult({
    requestId,
    diffDetected: diffFields.length > 0,
    diffFields,
    noiseFields: noiseFields ?? [],
    noiseSampled: noiseFields !== undefined,
  });
}

/** A random version-4 UUID from `random` (uniform in [0, 1)). */
export function uuid(random: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16));
  hex[12] = "4";
  hex[16] = "89ab"[Math.floor(random() * 4)]!;
  const text = hex.join("");
  return `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
}
