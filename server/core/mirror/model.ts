/**
 * The mirror service's domain types. Every value is a plain, readonly object;
 * times are epoch milliseconds injected by the caller (the core reads no
 * clock).
 *
 * Invariant: values are immutable. Every change produces a new object (a
 * disabled mirror is a new {@link MirrorConfig} with `enabled: false`), so
 * the RPC layer may cache renderings by object identity.
 */

/**
 * How a mirror chooses the traffic it copies (the seed's `MirrorMode`).
 *
 * - `full`: every request of the source service.
 * - `sampled`: a consistent share `sample_rate` of requests (see
 *   `sampling.ts`: the same request_id gets the same decision in every
 *   mirror and every process).
 * - `filtered`: requests whose intent passes include/exclude lists.
 * - `replay`: every request is captured and kept for a later, paced replay
 *   (see `replay.ts`) instead of being sent as it arrives.
 */
export type MirrorMode = "full" | "sampled" | "filtered" | "replay";

/** Every {@link MirrorMode}, in the API's enum order (FULL = 1 … REPLAY = 4). */
export const mirrorModes: readonly MirrorMode[] = ["full", "sampled", "filtered", "replay"];

/**
 * A JSON value as `google.protobuf.Value` carries it: no `undefined`, no
 * non-finite numbers (validation rejects them).
 */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;

/** A JSON object (`google.protobuf.Struct`). */
export interface JsonObject {
  readonly [key: string]: JsonValue;
}

/** One configured mirror (the seed's `MirrorConfig` plus the extensions). */
export interface MirrorConfig {
  /** 1..128 letters, digits and `. _ : -`; unique among mirrors. */
  readonly mirrorId: string;
  /** Captures of this service are offered to the mirror. */
  readonly sourceService: string;
  /** Absolute `http://` or `https://` URL; request paths are appended to it. */
  readonly shadowEndpoint: string;
  readonly mode: MirrorMode;
  /** Share 0..1 of requests mirrored in `sampled` mode; kept but unused otherwise. */
  readonly sampleRate: number;
  /** `filtered` only: when non-empty, only these intents are mirrored. */
  readonly includeIntents: readonly string[];
  /** `filtered` only: these intents are never mirrored (exclude wins over include). */
  readonly excludeIntents: readonly string[];
  /** How long a shadow request may take before it is a `timeout` result, 1..600000. */
  readonly timeoutMs: number;
  /** A disabled mirror is kept but never mirrors (capture and ShouldMirror say no). */
  readonly enabled: boolean;
  /** Stamped by the server when the mirror was added. */
  readonly createdAtMs: number;
  /** Pending requests the mirror's buffer holds; further captures are dropped and counted. */
  readonly bufferSize: number;
  /** Field paths left out of response diffs (see `diff.ts` for the path syntax). */
  readonly ignoreFields: readonly string[];
  /**
   * Header names (lowercase) redacted in addition to the default sensitive
   * headers before a mirrored request is stored or sent.
   */
  readonly redactHeaders: readonly string[];
  /**
   * Optional second endpoint running the same code as production (Diffy's
   * "secondary"). When set, each dispatched request is also sent there and
   * the production-vs-secondary diff counts as noise. Empty = no noise
   * baseline.
   */
  readonly secondaryEndpoint: string;
}

/**
 * A captured request as a mirror's buffer holds it (the seed's
 * `MirroredRequest`), built by `validateCaptureInput` and redacted per mirror
 * by `redactRequest`.
 */
export interface MirroredRequest {
  /** The request's id; the key of consistent sampling and of results. */
  readonly requestId: string;
  /** W3C trace id (32 lowercase hex), or "" when the capture carried none. */
  readonly traceId: string;
  readonly sourceService: string;
  readonly intent: string;
  /** The request body as JSON (a Struct); `{}` when the body is raw bytes or absent. */
  readonly payload: JsonObject;
  /** The original body for non-JSON traffic; when set it is sent instead of `payload`. */
  readonly rawBody?: Uint8Array;
  /** Header names are lowercase; sensitive values are `[REDACTED]` once stored. */
  readonly headers: Readonly<Record<string, string>>;
  /** Upper-case HTTP method; `POST` when the capture named none. */
  readonly method: string;
  /** Origin-form request target (`/orders?id=1`); `/` when the capture named none. */
  readonly path: string;
  /** The response production gave, when the capturing proxy passed it: the left side of diffs. */
  readonly productionResponse?: JsonValue;
  /** Stamped by the server when the request was captured. */
  readonly mirroredAtMs: number;
}

/**
 * A captured request with its payload already encoded as JSON: `payloadJson`
 * is what `JSON.stringify(payload)` gives. The store takes captures this way;
 * CaptureStream's decode workers encode them, so the event loop neither
 * receives the payload's object tree nor encodes it itself.
 */
export interface EncodedCapture extends Omit<MirroredRequest, "payload"> {
  readonly payloadJson: string;
}

/** `request` as an {@link EncodedCapture}. */
export function encodeCapturePayload(request: MirroredRequest): EncodedCapture {
  const { payload, ...rest } = request;
  return { ...rest, payloadJson: JSON.stringify(payload) };
}

/**
 * Why a shadow request did not succeed. `none` on success; `http_status`
 * when the shadow answered outside 2xx (`responseCode` says which).
 */
export type MirrorErrorKind = "none" | "timeout" | "connection" | "http_status";

/** Every {@link MirrorErrorKind}, in the API's enum order. */
export const mirrorErrorKinds: readonly MirrorErrorKind[] = ["none", "timeout", "connection", "http_status"];

/** The outcome of sending one mirrored request to a shadow (the seed's `MirrorResult`). */
export interface MirrorResult {
  readonly requestId: string;
  readonly mirrorId: string;
  readonly shadowEndpoint: string;
  /** The shadow answered 2xx within the timeout. */
  readonly success: boolean;
  /** Integer milliseconds from send to answer (or to the failure). */
  readonly latencyMs: number;
  /** The shadow's HTTP status, when it answered at all. */
  readonly responseCode?: number;
  readonly errorKind: MirrorErrorKind;
  /** Short failure detail (e.g. `ECONNREFUSED`), when `errorKind` is not `none`. */
  readonly error?: string;
  /**
   * Both sides were available and diffed: the shadow succeeded and the
   * capture carried a production response. The denominator of diff rates.
   */
  readonly compared: boolean;
  readonly diffDetected: boolean;
  /** `compareResponses`' summary when a diff was detected. */
  readonly diffSummary?: string;
  /** Field keys (see `fieldKey`) that differed production vs shadow, sorted, unique. */
  readonly diffFields: readonly string[];
  /**
   * Field keys that differed production vs secondary (noise), sorted,
   * unique; empty without a secondary sample.
   */
  readonly noiseFields: readonly string[];
  /** Whether a secondary (noise) sample was taken for this request. */
  readonly noiseSampled: boolean;
  /** Stamped by the caller when the result was recorded. */
  readonly completedAtMs: number;
}

/** The mirror service's configured limits. */
export interface MirrorLimits {
  /** Mirrors that may be configured at once (the seed's `max_mirrors`). */
  readonly maxMirrors: number;
  /** Buffer size of a mirror whose config leaves it unset (the seed's `buffer_size`). */
  readonly defaultBufferSize: number;
  /** Largest buffer size a config may ask for. */
  readonly maxBufferSize: number;
  /** Drain limit when a request leaves it unset (the seed's default 100). */
  readonly defaultDrainLimit: number;
  /** Dispatch batch size when a request leaves it unset (the seed's `batch_size=50`). */
  readonly defaultDispatchBatchSize: number;
  /** Largest drain limit or dispatch batch size. */
  readonly maxBatchSize: number;
  /** Largest JSON encoding (UTF-8 bytes) of a payload or production response. */
  readonly maxPayloadBytes: number;
  /** Largest raw body. */
  readonly maxRawBodyBytes: number;
  /** Headers one capture may carry. */
  readonly maxHeaders: number;
  /** Header names and values together, UTF-8 bytes. */
  readonly maxHeaderBytes: number;
}

/**
 * The mirror service's limits with defaults for what `overrides` leaves out:
 * 10 mirrors, buffers of 1000 (at most 100000), drains of 100 and dispatch
 * batches of 50 (both at most 10000), payloads of 1 MiB, raw bodies of
 * 1 MiB, 128 headers of 64 KiB.
 */
export function defaultMirrorLimits(overrides: Partial<MirrorLimits> = {}): MirrorLimits {
  return {
    maxMirrors: overrides.maxMirrors ?? 10,
    defaultBufferSize: overrides.defaultBufferSize ?? 1000,
    maxBufferSize: overrides.maxBufferSize ?? 100_000,
    defaultDrainLimit: overrides.defaultDrainLimit ?? 100,
    defaultDispatchBatchSize: overrides.defaultDispatchBatchSize ?? 50,
    maxBatchSize: overrides.maxBatchSize ?? 10_000,
    maxPayloadBytes: overrides.maxPayloadBytes ?? 1024 * 1024,
    maxRawBodyBytes: overrides.maxRawBodyBytes ?? 1024 * 1024,
    maxHeaders: overrides.maxHeaders ?? 128,
    maxHeaderBytes: overrides.maxHeaderBytes ?? 64 * 1024,
  };
}
