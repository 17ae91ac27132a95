/**
 * Whether a mirror copies a request: the seed's `should_mirror`, with the
 * reason, for the ShouldMirror RPC and for capture.
 *
 * Rules, in order:
 * 1. a disabled mirror never mirrors (`disabled`);
 * 2. when the subject names a source service, a mirror of another service
 *    does not apply (`source_mismatch`);
 * 3. by mode:
 *    - FULL: always (`full`);
 *    - SAMPLED: with an explicit `sample_seed` in [0, 1), mirrored when
 *      `seed < sample_rate` (the seed's contract, for callers who bring their
 *      own randomness); otherwise consistent sampling of the request_id, or
 *      of the trace_id when the request_id is empty (see `sampling.ts`);
 *      with neither id nor seed there is nothing consistent to decide on and
 *      the request is not mirrored (`no_sample_key`);
 *    - FILTERED: an intent in exclude_intents is never mirrored (exclude
 *      wins); otherwise, with a non-empty include_intents, only the intents
 *      listed there; with an empty one, every intent not excluded. Intents
 *      compare exactly (case-sensitive);
 *    - REPLAY: always (`replay`): a replay mirror records all traffic of its
 *      source so it can be re-sent later at a chosen pace; sampling and
 *      filters do not apply to it.
 */
import { InvalidFieldError } from "../errors.js";
import { compareText } from "../registry/ordering.js";
import type { MirrorConfig, MirroredRequest } from "./model.js";
import { sampleBucket, sampleKey, sampleThreshold } from "./sampling.js";
import { isShadowTraffic } from "./shadow-request.js";

/** Why a mirror did or did not copy a request. */
export type MirrorDecisionReason =
  | "disabled"
  | "source_mismatch"
  | "full"
  | "sampled_in"
  | "sampled_out"
  | "no_sample_key"
  | "intent_included"
  | "intent_excluded"
  | "intent_not_included"
  | "replay";

/** The answer of {@link shouldMirror}. */
export interface MirrorDecision {
  readonly mirror: boolean;
  readonly reason: MirrorDecisionReason;
  /** One sentence for people, e.g. `bucket 1234 >= threshold 500 (sample_rate 0.05, key from request_id)`. */
  readonly detail: string;
}

/** What {@link shouldMirror} knows of a request. */
export interface MirrorSubject {
  readonly intent: string;
  /** The consistent-sampling key; empty or absent falls back to `traceId`. */
  readonly requestId?: string;
  readonly traceId?: string;
  /**
   * A caller's own random value in [0, 1); when given it decides SAMPLED
   * instead of the hash.
   */
  readonly sampleSeed?: number;
  /** When given, mirrors of another source service do not apply. */
  readonly sourceService?: string;
}

/**
 * Decides whether `config` mirrors a request (see the module comment for the
 * rules).
 *
 * @throws InvalidFieldError naming `sample_seed` when a seed is given outside [0, 1)
 */
export function shouldMirror(config: MirrorConfig, subject: MirrorSubject): MirrorDecision {
  const seed = subject.sampleSeed;
  if (seed !== undefined && !(seed >= 0 && seed < 1)) {
    throw new InvalidFieldError("sample_seed", `must be in [0, 1), got ${seed}`);
  }
  if (!config.enabled) return decision(false, "disabled", `mirror ${config.mirrorId} is disabled`);
  if (subject.sourceService !== undefined && subject.sourceService !== config.sourceService) {
    return decision(
      false,
      "source_mismatch",
      `mirror ${config.mirrorId} copies ${config.sourceService}, not ${subject.sourceService}`,
    );
  }
  switch (config.mode) {
    case "full":
      return decision(true, "full", "FULL mode mirrors every request");
    case "replay":
      return decision(true, "replay", "REPLAY mode records every request for a later replay");
    case "sampled":
      return sampled(config.sampleRate, subject);
    case "filtered":
      return filtered(config, subject.intent);
  }
}

/** What {@link selectMirrors} reads of a captured request. */
export type CaptureSubject = Pick<MirroredRequest, "requestId" | "traceId" | "sourceService" | "intent" | "headers">;

/**
 * The mirrors of `configs` that copy a captured request (enabled, of the
 * request's source service, and deciding yes), in mirror_id order: what a
 * capture queues into. A request that carries the shadow marker header is
 * mirror traffic already and goes to no mirror (no mirror loops).
 */
export function selectMirrors(configs: Iterable<MirrorConfig>, request: CaptureSubject): MirrorConfig[] {
  if (isShadowTraffic(request.headers)) return [];
  const selected: MirrorConfig[] = [];
  for (const config of configs) {
    if (shouldMirror(config, request).mirror) selected.push(config);
  }
  return selected.sort((a, b) => compareText(a.mirrorId, b.mirrorId));
}

function sampled(sampleRate: number, subject: MirrorSubject): MirrorDecision {
  if (subject.sampleSeed !== undefined) {
    const seed = subject.sampleSeed;
    return seed < sampleRate
      ? decision(true, "sampled_in", `sample_seed ${seed} < sample_rate ${sampleRate}`)
      : decision(false, "sampled_out", `sample_seed ${seed} >= sample_rate ${sampleRate}`);
  }
  const key = sampleKey(subject.requestId, subject.traceId);
  if (key === undefined) {
    return decision(false, "no_sample_key", "SAMPLED mode needs a request_id, trace_id or sample_seed to decide on");
  }
  const bucket = sampleBucket(key.key);
  const threshold = sampleThreshold(sampleRate);
  const why = `(sample_rate ${sampleRate}, key from ${key.source})`;
  return bucket < threshold
    ? decision(true, "sampled_in", `bucket ${bucket} < threshold ${threshold} ${why}`)
    : decision(false, "sampled_out", `bucket ${bucket} >= threshold ${threshold} ${why}`);
}

function filtered(config: MirrorConfig, intent: string): MirrorDecision {
  if (config.excludeIntents.includes(intent)) {
    return decision(false, "intent_excluded", `intent ${JSON.stringify(intent)} is in exclude_intents`);
  }
  if (config.includeIntents.length === 0) {
    const detail = `intent ${JSON.stringify(intent)} is not excluded and include_intents is empty`;
    return decision(true, "intent_included", detail);
  }
  return config.includeIntents.includes(intent)
    ? decision(true, "intent_included", `intent ${JSON.stringify(intent)} is in include_intents`)
    : decision(false, "intent_not_included", `intent ${JSON.stringify(intent)} is not in include_intents`);
}

function decision(mirror: boolean, reason: MirrorDecisionReason, detail: string): MirrorDecision {
  return { mirror, reason, detail };
}
