/**
 * Turning what happened to a shadow request into a {@link MirrorResult}.
 * Timeouts, connection errors and non-2xx answers are results, never
 * exceptions: the dispatcher reports each as a {@link ShadowOutcome}.
 *
 * Rules:
 * - success = an HTTP answer with a 2xx status (within the timeout, or it
 *   would be a `timeout` outcome);
 * - a successful result is compared when the capture carried a production
 *   response: production vs the shadow's body, minus the mirror's
 *   ignore_fields. A missing shadow body compares as `null`;
 * - when a secondary outcome is given and is a 2xx answer too, production vs
 *   the secondary's body is the noise sample of the request;
 * - latency is rounded to whole milliseconds, never negative.
 */
import { compareResponses, diffFieldKeys } from "./diff.js";
import type { JsonValue, MirrorConfig, MirroredRequest, MirrorErrorKind, MirrorResult } from "./model.js";

/**
 * What a dispatcher observed for one HTTP request.
 *
 * `body` is the answer parsed as JSON; an answer that is not JSON is passed
 * as its text (a JSON string), so it differs from a JSON production response
 * by type. Absent when the answer had no body.
 */
export type ShadowOutcome =
  | { readonly kind: "response"; readonly status: number; readonly latencyMs: number; readonly body?: JsonValue }
  | { readonly kind: "timeout"; readonly latencyMs: number }
  | { readonly kind: "connection"; readonly latencyMs: number; readonly error: string };

/** The context a result is built in. */
export interface ResultContext {
  readonly mirror: Pick<MirrorConfig, "mirrorId" | "shadowEndpoint" | "ignoreFields">;
  readonly request: Pick<MirroredRequest, "requestId" | "productionResponse">;
  /** When the result was recorded (epoch ms, injected). */
  readonly completedAtMs: number;
  /** The same request's outcome at the mirror's secondary endpoint, if one is configured. */
  readonly secondary?: ShadowOutcome;
}

/** Builds the result of a shadow request (see the module comment). */
export function buildMirrorResult(outcome: ShadowOutcome, context: ResultContext): MirrorResult {
  const { mirror, request } = context;
  const success = isSuccess(outcome);
  const errorKind = errorKindOf(outcome);
  const base = {
    requestId: request.requestId,
    mirrorId: mirror.mirrorId,
    shadowEndpoint: mirror.shadowEndpoint,
    success,
    latencyMs: Math.max(0, Math.round(outcome.latencyMs)),
    ...(outcome.kind === "response" ? { responseCode: outcome.status } : {}),
    errorKind,
    ...(errorKind !== "none" ? { error: errorText(outcome) } : {}),
    completedAtMs: context.completedAtMs,
  };
  const production = request.productionResponse;
  if (!success || production === undefined || outcome.kind !== "response") {
    return { ...base, compared: false, diffDetected: false, diffFields: [], noiseFields: [], noiseSampled: false };
  }
  const comparison = compareResponses(production, outcome.body ?? null, mirror.ignoreFields);
  const secondary = context.secondary;
  const noiseSampled = secondary !== undefined && secondary.kind === "response" && isSuccess(secondary);
  const noiseFields = noiseSampled
    ? diffFieldKeys(compareResponses(production, secondary.body ?? null, mirror.ignoreFields).diffs)
    : [];
  return {
    ...base,
    compared: true,
    diffDetected: comparison.hasDiff,
    ...(comparison.summary !== undefined ? { diffSummary: comparison.summary } : {}),
    diffFields: diffFieldKeys(comparison.diffs),
    noiseFields,
    noiseSampled,
  };
}

function isSuccess(outcome: ShadowOutcome): boolean {
  return outcome.kind === "response" && outcome.status >= 200 && outcome.status < 300;
}

function errorKindOf(outcome: ShadowOutcome): MirrorErrorKind {
  switch (outcome.kind) {
    case "response":
      return isSuccess(outcome) ? "none" : "http_status";
    case "timeout":
      return "timeout";
    case "connection":
      return "connection";
  }
}

function errorText(outcome: ShadowOutcome): string {
  switch (outcome.kind) {
    case "response":
      return `shadow answered HTTP ${outcome.status}`;
    case "timeout":
      return `no answer within ${Math.round(outcome.latencyMs)} ms`;
    case "connection":
      return outcome.error;
  }
}
