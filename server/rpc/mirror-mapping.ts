/**
 * Translation between the MirrorService API messages and the mirror core's
 * domain values: enums, Timestamps, `google.protobuf.Value` (a message on
 * the wire, plain JSON inside) and proto3 zero values (read as unset).
 */
import { create, fromJson, type JsonObject as ProtoJsonObject, type JsonValue as ProtoJsonValue } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import {
  DiffKind,
  DispatchError,
  FieldDiffCountSchema,
  FieldVerdict,
  MirrorConfigSchema,
  MirrorMode,
  MirroredRequestSchema,
  MirrorResultSchema,
  type AnalyzeDiffsResponse,
  type CaptureRequest,
  type CaptureStreamRequest,
  type FieldDiff as FieldDiffMessage,
  type MirrorConfig as MirrorConfigMessage,
  type MirroredRequest as MirroredRequestMessage,
  type MirrorResult as MirrorResultMessage,
} from "../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { InvalidFieldError } from "../core/errors.js";
import type { DiffAnalysis } from "../core/mirror/analysis.js";
import type { DiffKind as Kind, FieldDiff } from "../core/mirror/diff.js";
import {
  encodeCapturePayload,
  type EncodedCapture,
  type JsonValue,
  type MirrorConfig,
  type MirroredRequest,
  type MirrorErrorKind,
  type MirrorLimits,
  type MirrorMode as Mode,
  type MirrorResult,
} from "../core/mirror/model.js";
import type { FieldVerdict as Verdict } from "../core/mirror/noise.js";
import { quote } from "../core/mirror/quote.js";
import { validateCaptureInput, type CaptureInput, type MirrorConfigInput } from "../core/mirror/validation.js";

const modeOf: Record<MirrorMode, Mode | undefined> = {
  [MirrorMode.UNSPECIFIED]: undefined,
  [MirrorMode.FULL]: "full",
  [MirrorMode.SAMPLED]: "sampled",
  [MirrorMode.FILTERED]: "filtered",
  [MirrorMode.REPLAY]: "replay",
};

const modeEnum: Record<Mode, MirrorMode> = {
  full: MirrorMode.FULL,
  sampled: MirrorMode.SAMPLED,
  filtered: MirrorMode.FILTERED,
  replay: MirrorMode.REPLAY,
};

const errorEnum: Record<MirrorErrorKind, DispatchError> = {
  none: DispatchError.UNSPECIFIED,
  timeout: DispatchError.TIMEOUT,
  connection: DispatchError.CONNECTION,
  http_status: DispatchError.HTTP_STATUS,
};

const kindEnum: Record<Kind, DiffKind> = {
  value_changed: DiffKind.VALUE_CHANGED,
  type_changed: DiffKind.TYPE_CHANGED,
  missing: DiffKind.MISSING,
  extra: DiffKind.EXTRA,
  array_length: DiffKind.ARRAY_LENGTH,
};

const verdictEnum: Record<Verdict, FieldVerdict> = {
  reported: FieldVerdict.REPORTED,
  noise: FieldVerdict.NOISE,
  insignificant: FieldVerdict.INSIGNIFICANT,
};

/**
 * A `google.protobuf.Value` message as plain JSON; undefined when unset.
 * Walked by hand rather than with `toJson`, which throws a plain Error (an
 * INTERNAL answer) for NaN and Infinity: those are kept as numbers here, for
 * the caller's `checkJson` to reject naming the exact path.
 *
 * @param field the request field holding the value, for messages
 * @throws InvalidFieldError naming the path of a Value with no kind set
 */
export function jsonOfValue(value: Value | undefined, field: string): JsonValue | undefined {
  return value === undefined ? undefined : walkValue(value, field);
}

function walkValue(value: Value, field: string): JsonValue {
  const { kind } = value;
  switch (kind.case) {
    case "nullValue":
      return null;
    case "boolValue":
    case "numberValue":
    case "stringValue":
      return kind.value;
    case "listValue":
      return kind.value.values.map((item, i) => walkValue(item, `${field}[${i}]`));
    case "structValue":
      // fromEntries defines own properties, so a key "__proto__" stays a key.
      return Object.fromEntries(
        Object.entries(kind.value.fields).map(([key, item]) => [key, walkValue(item, `${field}[${quote(key)}]`)]),
      );
    default:
      throw new InvalidFieldError(field, "must hold a value (a google.protobuf.Value with no kind set)");
  }
}

/** Plain JSON as a `google.protobuf.Value` message. */
export function valueOfJson(json: JsonValue): Value {
  return fromJson(ValueSchema, json as ProtoJsonValue);
}

/** A config message as the core's unvalidated input (UNSPECIFIED mode and zero sizes read as unset). */
export function mirrorConfigInput(message: MirrorConfigMessage): MirrorConfigInput {
  return {
    mirrorId: message.mirrorId,
    sourceService: message.sourceService,
    shadowEndpoint: message.shadowEndpoint,
    mode: modeOf[message.mode],
    sampleRate: message.sampleRate,
    includeIntents: message.includeIntents,
    excludeIntents: message.excludeIntents,
    timeoutMs: message.timeoutMs,
    ...(message.enabled !== undefined ? { enabled: message.enabled } : {}),
    bufferSize: message.bufferSize,
    ignoreFields: message.ignoreFields,
    redactHeaders: message.redactHeaders,
    secondaryEndpoint: message.secondaryEndpoint,
  };
}

/** A mirror as the API's message. */
export function renderMirrorConfig(config: MirrorConfig): MirrorConfigMessage {
  return create(MirrorConfigSchema, {
    mirrorId: config.mirrorId,
    sourceService: config.sourceService,
    shadowEndpoint: config.shadowEndpoint,
    mode: modeEnum[config.mode],
    sampleRate: config.sampleRate,
    includeIntents: [...config.includeIntents],
    excludeIntents: [...config.excludeIntents],
    timeoutMs: config.timeoutMs,
    enabled: config.enabled,
    createdAt: timestampFromMs(config.createdAtMs),
    bufferSize: config.bufferSize,
    ignoreFields: [...config.ignoreFields],
    redactHeaders: [...config.redactHeaders],
    secondaryEndpoint: config.secondaryEndpoint,
  });
}

/**
 * A capture message as the core's unvalidated input.
 *
 * @param fieldPrefix the message's field path (`capture[3]`), "" for top-level fields
 */
export function captureInput(message: CaptureRequest, fieldPrefix = ""): CaptureInput {
  const field = fieldPrefix === "" ? "production_response" : `${fieldPrefix}.production_response`;
  const productionResponse = jsonOfValue(message.productionResponse, field);
  return {
    requestId: message.requestId,
    traceId: message.traceId,
    sourceService: message.sourceService,
    intent: message.intent,
    ...(message.payload !== undefined ? { payload: message.payload } : {}),
    ...(message.body.length > 0 ? { rawBody: message.body } : {}),
    headers: message.headers,
    ...(message.method !== "" ? { method: message.method } : {}),
    ...(message.path !== "" ? { path: message.path } : {}),
    ...(productionResponse !== undefined ? { productionResponse } : {}),
  };
}

/** A buffered request as the API's message. */
export function renderMirroredRequest(request: MirroredRequest): MirroredRequestMessage {
  return create(MirroredRequestSchema, {
    requestId: request.requestId,
    traceId: request.traceId,
    sourceService: request.sourceService,
    intent: request.intent,
    payload: request.payload as ProtoJsonObject,
    headers: { ...request.headers },
    mirroredAt: timestampFromMs(request.mirroredAtMs),
    ...(request.rawBody !== undefined ? { body: request.rawBody } : {}),
    method: request.method,
    path: request.path,
    ...(request.productionResponse !== undefined ? { productionResponse: valueOfJson(request.productionResponse) } : {}),
  });
}

/** A dispatch result as the API's message. */
export function renderMirrorResult(result: MirrorResult): MirrorResultMessage {
  return create(MirrorResultSchema, {
    requestId: result.requestId,
    shadowEndpoint: result.shadowEndpoint,
    success: result.success,
    latencyMs: result.latencyMs,
    ...(result.responseCode !== undefined ? { responseCode: result.responseCode } : {}),
    diffDetected: result.diffDetected,
    ...(result.diffSummary !== undefined ? { diffSummary: result.diffSummary } : {}),
    error: errorEnum[result.errorKind],
    diffFields: [...result.diffFields],
    mirrorId: result.mirrorId,
    compared: result.compared,
    noiseFields: [...result.noiseFields],
    errorMessage: result.error ?? "",
  });
}

/** One field diff as the API's message. */
export function renderFieldDiff(diff: FieldDiff): Omit<FieldDiffMessage, "$typeName"> {
  return {
    path: diff.path,
    kind: kindEnum[diff.kind],
    ...(diff.production !== undefined ? { production: valueOfJson(diff.production) } : {}),
    ...(diff.shadow !== undefined ? { shadow: valueOfJson(diff.shadow) } : {}),
  };
}

/** An analysis report as the API's response fields. */
export function renderAnalysis(analysis: DiffAnalysis): Omit<AnalyzeDiffsResponse, "$typeName"> {
  return {
    results: BigInt(analysis.results),
    compared: BigInt(analysis.compared),
    failed: BigInt(analysis.failed),
    failures: Object.fromEntries(Object.entries(analysis.failures).map(([kind, count]) => [kind, BigInt(count)])),
    diffRequests: BigInt(analysis.diffRequests),
    diffRate: analysis.diffRate,
    threshold: analysis.threshold,
    alert: analysis.alert,
    mostDifferingFields: [...analysis.mostDifferingFields],
    noiseFields: [...analysis.noiseFields],
    noiseMeasured: analysis.noiseMeasured,
    fields: analysis.fields.map((field) =>
      create(FieldDiffCountSchema, {
      field: field.field,
      candidateDiffs: BigInt(field.candidateDiffs),
      noiseDiffs: BigInt(field.noiseDiffs),
      diffRate: field.diffRate,
      verdict: verdictEnum[field.verdict],
      exampleRequestIds: [...field.exampleRequestIds],
      }),
    ),
    recommendations: [...analysis.recommendations],
  };
}

/**
 * A capture message checked and converted (see `validateCaptureInput`). The
 * core names the raw body `raw_body`; the API's field is `body`.
 *
 * @param fieldPrefix the message's field path (`capture[3]`), "" for top-level fields
 * @throws InvalidFieldError naming the API's field
 */
export function validateCapture(message: CaptureRequest, nowMs: number, limits: MirrorLimits, fieldPrefix: string): MirroredRequest {
  const field = (name: string): string => (fieldPrefix === "" ? name : `${fieldPrefix}.${name}`);
  try {
    return validateCaptureInput(captureInput(message, fieldPrefix), nowMs, limits, fieldPrefix);
  } catch (error) {
    if (error instanceof InvalidFieldError && error.field === field("raw_body")) {
      throw new InvalidFieldError(field("body"), error.reason);
    }
    throw error;
  }
}

/** What preparing a CaptureStream message needs from the server: plain data, as it crosses threads. */
export interface CaptureContext {
  /** When the message's chunk was taken (epoch ms): its captures' `mirrored_at`. */
  readonly nowMs: number;
  readonly limits: MirrorLimits;
}

/**
 * CaptureStream message `index` checked and converted: its capture, which
 * is required, as `validateCapture` gives it, with fields named
 * `capture[index].…`, and its payload encoded (the decode workers run this,
 * so the event loop only stores the payload's JSON).
 *
 * @throws InvalidFieldError naming the field
 */
export function captureStreamMessage(message: CaptureStreamRequest, index: number, { nowMs, limits }: CaptureContext): EncodedCapture {
  const field = `capture[${index}]`;
  if (message.capture === undefined) throw new InvalidFieldError(field, "is required");
  return encodeCapturePayload(validateCapture(message.capture, nowMs, limits, field));
}
