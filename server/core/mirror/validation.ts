/**
 * Field rules of the mirror API. Each check throws an
 * {@link InvalidFieldError} naming the field as the API spells it
 * (`mirror.sample_rate`, `request.headers["x-a"]`) and the rule with the value
 * seen (`must be in [0, 1], got 1.5`).
 *
 * Unset fields are `undefined`; proto3's defaults (`""`, `0`) count as unset
 * where the wire cannot tell them apart: a buffer_size of 0 is the default
 * size, a timeout_ms of 0 is rejected as out of range.
 */
import { isIP } from "node:net";
import { InvalidFieldError } from "../errors.js";
import { validateInstanceId, validateServiceName } from "../registry/validation.js";
import { validateTraceId } from "../tracing/validation.js";
import { parseFieldPath } from "./field-path.js";
import {
  defaultMirrorLimits,
  mirrorModes,
  type JsonObject,
  type JsonValue,
  type MirrorConfig,
  type MirroredRequest,
  type MirrorLimits,
  type MirrorMode,
} from "./model.js";
import { quote } from "./quote.js";
import { sampleBuckets, sampleThreshold } from "./sampling.js";

/** A mirror config as a client sent it (AddMirror), before validation. */
export interface MirrorConfigInput {
  readonly mirrorId?: string;
  readonly sourceService?: string;
  readonly shadowEndpoint?: string;
  /** MIRROR_MODE_UNSPECIFIED maps to `undefined` and is rejected. */
  readonly mode?: MirrorMode;
  readonly sampleRate?: number;
  readonly includeIntents?: readonly string[];
  readonly excludeIntents?: readonly string[];
  readonly timeoutMs?: number;
  /** Default true (the seed's); the proto field must be `optional` to tell unset from false. */
  readonly enabled?: boolean;
  /** 0 or unset: the limits' default buffer size. */
  readonly bufferSize?: number;
  readonly ignoreFields?: readonly string[];
  readonly redactHeaders?: readonly string[];
  /** "" or unset: no secondary. */
  readonly secondaryEndpoint?: string;
}

/** A capture as a client sent it (Capture, CaptureStream), before validation. */
export interface CaptureInput {
  readonly requestId?: string;
  readonly traceId?: string;
  readonly sourceService?: string;
  readonly intent?: string;
  /** Default `{}`. */
  readonly payload?: JsonObject;
  readonly rawBody?: Uint8Array;
  /** Names are matched case-insensitively and stored lowercase. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Default `POST`; stored upper-case. */
  readonly method?: string;
  /** Default `/`. */
  readonly path?: string;
  readonly productionResponse?: JsonValue;
}

/** Size bounds of mirror configs and captures that are not {@link MirrorLimits}. */
export const mirrorInputLimits = {
  maxTimeoutMs: 600_000,
  maxEndpointChars: 2048,
  maxIntents: 256,
  maxIntentChars: 256,
  maxIgnoreFields: 64,
  maxRedactHeaders: 64,
  maxHeaderNameChars: 256,
  maxHeaderValueChars: 8192,
  maxRequestIdChars: 256,
  maxMethodChars: 32,
  maxPathChars: 8192,
  /** Nesting depth of a payload or production response. */
  maxJsonDepth: 64,
} as const;

const modeNames = mirrorModes.map((mode) => mode.toUpperCase()).join(", ");
const hostnameLabelPattern = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const portPattern = /^[1-9][0-9]{0,4}$/;
const headerNamePattern = /^(?::[a-z]+|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/;
const methodPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const pathPattern = /^\/[\x21-\x22\x24-\x7e]*$/;
const requestIdPattern = /^[\x21-\x7e]+$/;
const controlCharPattern = /[\x00-\x1f\x7f]/;
const headerValueForbidden = /[\r\n\0]/;

/**
 * Checks an AddMirror config and returns it as a {@link MirrorConfig}
 * (defaults filled in, header names lowercased).
 *
 * Order of checks: mirror_id, source_service, shadow_endpoint, mode,
 * sample_rate, intents, timeout_ms, buffer_size, ignore_fields,
 * redact_headers, secondary_endpoint.
 *
 * @param createdAtMs when the mirror is added (epoch ms, injected)
 * @param fieldPrefix the message's field path, e.g. `mirror`
 * @throws InvalidFieldError for the first field that breaks a rule
 */
export function validateMirrorConfigInput(
  input: MirrorConfigInput,
  createdAtMs: number,
  limits: MirrorLimits = defaultMirrorLimits(),
  fieldPrefix = "mirror",
): MirrorConfig {
  const field = (name: string): string => (fieldPrefix === "" ? name : `${fieldPrefix}.${name}`);
  const mirrorId = input.mirrorId ?? "";
  validateMirrorId(mirrorId, field("mirror_id"));
  const sourceService = input.sourceService ?? "";
  validateServiceName(sourceService, field("source_service"));
  const shadowEndpoint = input.shadowEndpoint ?? "";
  validateHttpEndpoint(shadowEndpoint, field("shadow_endpoint"));

  const mode = input.mode;
  if (mode === undefined || !mirrorModes.includes(mode)) {
    const seen = mode === undefined ? "unset" : quote(mode);
    throw new InvalidFieldError(field("mode"), `must be one of ${modeNames}, got ${seen}`);
  }
  const sampleRate = input.sampleRate ?? 0;
  checkSampleRate(sampleRate, mode, field("sample_rate"));

  const includeIntents = input.includeIntents ?? [];
  const excludeIntents = input.excludeIntents ?? [];
  checkIntents(includeIntents, field("include_intents"));
  checkIntents(excludeIntents, field("exclude_intents"));
  if (mode === "filtered" && includeIntents.length === 0 && excludeIntents.length === 0) {
    throw new InvalidFieldError(
      field("include_intents"),
      "or exclude_intents must name at least one intent in FILTERED mode",
    );
  }
  if (mode !== "filtered") {
    for (const [name, intents] of [["include_intents", includeIntents], ["exclude_intents", excludeIntents]] as const) {
      if (intents.length > 0) {
        throw new InvalidFieldError(
          field(name),
          `must be empty unless mode is FILTERED, got ${intents.length} in ${mode.toUpperCase()} mode`,
        );
      }
    }
  }

  const timeoutMs = input.timeoutMs ?? 0;
  checkIntegerRange(timeoutMs, 1, mirrorInputLimits.maxTimeoutMs, field("timeout_ms"));
  const bufferSize =
    input.bufferSize === undefined || input.bufferSize === 0 ? limits.defaultBufferSize : input.bufferSize;
  checkIntegerRange(bufferSize, 1, limits.maxBufferSize, field("buffer_size"));

  const ignoreFields = input.ignoreFields ?? [];
  checkCount(ignoreFields, mirrorInputLimits.maxIgnoreFields, field("ignore_fields"));
  ignoreFields.forEach((text, i) => parseFieldPath(text, `${field("ignore_fields")}[${i}]`));

  const redactHeaders = input.redactHeaders ?? [];
  checkCount(redactHeaders, mirrorInputLimits.maxRedactHeaders, field("redact_headers"));
  redactHeaders.forEach((name, i) => validateHeaderName(name, `${field("redact_headers")}[${i}]`));

  const secondaryEndpoint = input.secondaryEndpoint ?? "";
  if (secondaryEndpoint !== "") validateHttpEndpoint(secondaryEndpoint, field("secondary_endpoint"));

  return {
    mirrorId,
    sourceService,
    shadowEndpoint,
    mode,
    sampleRate,
    includeIntents: [...includeIntents],
    excludeIntents: [...excludeIntents],
    timeoutMs,
    enabled: input.enabled ?? true,
    createdAtMs,
    bufferSize,
    ignoreFields: [...ignoreFields],
    redactHeaders: redactHeaders.map((name) => name.toLowerCase()),
    secondaryEndpoint,
  };
}

/**
 * Checks a capture and returns it as a {@link MirroredRequest}, not yet
 * redacted (redaction depends on the mirror: see `redactRequest`).
 *
 * Order of checks: request_id, trace_id, source_service, intent, method,
 * path, headers, payload, raw_body, production_response.
 *
 * @param mirroredAtMs when the request was captured (epoch ms, injected)
 * @param fieldPrefix the message's field path, e.g. `capture` or `requests[3]`; "" for top-level fields
 * @throws InvalidFieldError for the first field that breaks a rule
 */
export function validateCaptureInput(
  input: CaptureInput,
  mirroredAtMs: number,
  limits: MirrorLimits = defaultMirrorLimits(),
  fieldPrefix = "request",
): MirroredRequest {
  const field = (name: string): string => (fieldPrefix === "" ? name : `${fieldPrefix}.${name}`);
  const requestId = input.requestId ?? "";
  if (requestId === "") throw new InvalidFieldError(field("request_id"), "must not be empty");
  if (requestId.length > mirrorInputLimits.maxRequestIdChars || !requestIdPattern.test(requestId)) {
    throw new InvalidFieldError(
      field("request_id"),
      `must be 1..${mirrorInputLimits.maxRequestIdChars} visible ASCII characters, got ${quote(requestId)}`,
    );
  }
  const traceId = input.traceId ?? "";
  if (traceId !== "") validateTraceId(traceId, field("trace_id"));
  const sourceService = input.sourceService ?? "";
  validateServiceName(sourceService, field("source_service"));
  const intent = input.intent ?? "";
  checkIntent(intent, field("intent"));

  const method = (input.method || "POST").toUpperCase();
  if (method.length > mirrorInputLimits.maxMethodChars || !methodPattern.test(method)) {
    throw new InvalidFieldError(field("method"), `must be an HTTP method token, got ${quote(method)}`);
  }
  const path = input.path || "/";
  if (path.length > mirrorInputLimits.maxPathChars) {
    throw new InvalidFieldError(
      field("path"),
      `must be at most ${mirrorInputLimits.maxPathChars} characters, got ${path.length}`,
    );
  }
  if (!pathPattern.test(path)) {
    throw new InvalidFieldError(
      field("path"),
      `must start with / and hold only visible ASCII without # (percent-encode others), got ${quote(path)}`,
    );
  }

  const headers = normalizeHeaders(input.headers ?? {}, limits, field("headers"));
  const payload = input.payload ?? {};
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    throw new InvalidFieldError(field("payload"), "must be a JSON object");
  }
  checkJson(payload, limits.maxPayloadBytes, field("payload"));
  if (input.rawBody !== undefined && input.rawBody.byteLength > limits.maxRawBodyBytes) {
    throw new InvalidFieldError(
      field("raw_body"),
      `must be at most ${limits.maxRawBodyBytes} bytes, got ${input.rawBody.byteLength}`,
    );
  }
  if (input.productionResponse !== undefined) {
    checkJson(input.productionResponse, limits.maxPayloadBytes, field("production_response"));
  }
  return {
    requestId,
    traceId,
    sourceService,
    intent,
    payload,
    ...(input.rawBody !== undefined ? { rawBody: input.rawBody } : {}),
    headers,
    method,
    path,
    ...(input.productionResponse !== undefined ? { productionResponse: input.productionResponse } : {}),
    mirroredAtMs,
  };
}

/**
 * Checks a mirror id: 1..128 letters, digits and `. _ : -`, starting with a
 * letter or digit (the registry's instance id rule).
 *
 * @throws InvalidFieldError naming `field`
 */
export function validateMirrorId(mirrorId: string, field: string): void {
  validateInstanceId(mirrorId, field);
}

/**
 * Checks an endpoint a mirror sends to: an absolute `http://` or `https://`
 * URL with a host (an RFC 1123 hostname, a dotted IPv4 address or a bracketed
 * IPv6 address, written as the URL standard would write it), an optional
 * port 1..65535 and an optional base path; no credentials, query or fragment,
 * since request paths are appended to it.
 *
 * @throws InvalidFieldError naming `field`
 */
export function validateHttpEndpoint(endpoint: string, field: string): void {
  if (endpoint === "") throw new InvalidFieldError(field, "must not be empty");
  if (endpoint.length > mirrorInputLimits.maxEndpointChars) {
    throw new InvalidFieldError(
      field,
      `must be at most ${mirrorInputLimits.maxEndpointChars} characters, got ${endpoint.length}`,
    );
  }
  const seen = quote(endpoint);
  const fail = (rule: string): never => {
    throw new InvalidFieldError(field, rule);
  };
  const [, authority, rest] = /^https?:\/\/([^/?#]*)(.*)$/.exec(endpoint) ?? [];
  if (authority === undefined || rest === undefined) {
    return fail(`must be an absolute http:// or https:// URL, got ${seen}`);
  }
  if (authority.includes("@")) fail(`must not contain credentials, got ${seen}`);
  if (/[?#]/.test(rest)) fail(`must not have a query or fragment (request paths are appended), got ${seen}`);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return fail(`must be a valid URL, got ${seen}`);
  }
  const bracketEnd = authority.startsWith("[") ? authority.indexOf("]") + 1 : 0;
  const colon = authority.indexOf(":", bracketEnd);
  const host = colon < 0 ? authority : authority.slice(0, colon);
  if (host.toLowerCase() !== url.hostname) {
    fail(`host must be written in canonical form (${quote(url.hostname)}), got ${quote(host)}`);
  }
  if (bracketEnd === 0 && isIP(host) !== 4 && !isHostname(host)) {
    fail(
      "host must be a hostname of dot-separated labels of 1..63 letters, digits and - (not first or last), " +
        `got ${quote(host)}`,
    );
  }
  if (colon >= 0) {
    const port = authority.slice(colon + 1);
    if (!portPattern.test(port) || Number(port) > 65_535) {
      fail(`port must be 1..65535, got ${quote(port)}`);
    }
  }
}

/**
 * Checks an HTTP header name (an RFC 9110 token, or an HTTP/2 pseudo-header
 * such as `:authority`), at most 256 characters.
 *
 * @throws InvalidFieldError naming `field`
 */
export function validateHeaderName(name: string, field: string): void {
  if (name === "") throw new InvalidFieldError(field, "must not be empty");
  if (name.length > mirrorInputLimits.maxHeaderNameChars || !headerNamePattern.test(name)) {
    throw new InvalidFieldError(
      field,
      `must be an HTTP header name of at most ${mirrorInputLimits.maxHeaderNameChars} token characters, ` +
        `got ${quote(name)}`,
    );
  }
}

/**
 * Checks a JSON value a client sent: only JSON types, finite numbers, at
 * most {@link mirrorInputLimits}.maxJsonDepth levels, and an encoding of at
 * most `maxBytes` UTF-8 bytes.
 *
 * @returns the size of its JSON encoding in bytes
 * @throws InvalidFieldError naming `field` or the path inside it
 */
export function checkJson(value: JsonValue, maxBytes: number, field: string): number {
  checkJsonNode(value, () => field, 1);
  const bytes = Buffer.byteLength(JSON.stringify(value), "utf8");
  if (bytes > maxBytes) {
    throw new InvalidFieldError(field, `must encode to at most ${maxBytes} bytes of JSON, got ${bytes}`);
  }
  return bytes;
}

/**
 * Checks one node of a JSON value and its children. The node's field path
 * is built only to throw: this runs for every node of every capture.
 */
function checkJsonNode(value: unknown, field: () => string, depth: number): void {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new InvalidFieldError(field(), `must be a finite number, got ${value}`);
    return;
  }
  if (typeof value !== "object") throw new InvalidFieldError(field(), `must be a JSON value, got a ${typeof value}`);
  if (depth > mirrorInputLimits.maxJsonDepth) {
    throw new InvalidFieldError(field(), `must nest at most ${mirrorInputLimits.maxJsonDepth} levels deep`);
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkJsonNode(item, () => `${field()}[${i}]`, depth + 1));
    return;
  }
  for (const key in value) {
    if (Object.hasOwn(value, key)) {
      checkJsonNode((value as Record<string, unknown>)[key], () => `${field()}[${quote(key)}]`, depth + 1);
    }
  }
}

function normalizeHeaders(
  headers: Readonly<Record<string, string>>,
  limits: MirrorLimits,
  field: string,
): Readonly<Record<string, string>> {
  const entries = Object.entries(headers);
  if (entries.length > limits.maxHeaders) {
    throw new InvalidFieldError(field, `must have at most ${limits.maxHeaders} entries, got ${entries.length}`);
  }
  const normalized: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of entries) {
    // Built only to throw (see checkJsonNode).
    const entryField = (): string => `${field}[${quote(name)}]`;
    if (name === "" || name.length > mirrorInputLimits.maxHeaderNameChars || !headerNamePattern.test(name)) {
      validateHeaderName(name, entryField());
    }
    const lower = name.toLowerCase();
    if (Object.hasOwn(normalized, lower)) {
      throw new InvalidFieldError(entryField(), `repeats header ${quote(lower)} (names are case-insensitive)`);
    }
    if (value.length > mirrorInputLimits.maxHeaderValueChars) {
      throw new InvalidFieldError(
        entryField(),
        `value must be at most ${mirrorInputLimits.maxHeaderValueChars} characters, got ${value.length}`,
      );
    }
    if (headerValueForbidden.test(value)) {
      throw new InvalidFieldError(entryField(), "value must not contain CR, LF or NUL");
    }
    normalized[lower] = value;
    bytes += Buffer.byteLength(name, "utf8") + Buffer.byteLength(value, "utf8");
  }
  if (bytes > limits.maxHeaderBytes) {
    throw new InvalidFieldError(
      field,
      `names and values must total at most ${limits.maxHeaderBytes} bytes, got ${bytes}`,
    );
  }
  return normalized;
}

function checkSampleRate(sampleRate: number, mode: MirrorMode, field: string): void {
  if (!(sampleRate >= 0 && sampleRate <= 1)) throw new InvalidFieldError(field, `must be in [0, 1], got ${sampleRate}`);
  if (mode !== "sampled") return;
  if (sampleRate === 0) throw new InvalidFieldError(field, "must be > 0 in SAMPLED mode, got 0");
  if (sampleThreshold(sampleRate) === 0) {
    throw new InvalidFieldError(
      field,
      `must be at least ${0.5 / sampleBuckets} in SAMPLED mode ` +
        `(the sampling resolution is 1/${sampleBuckets}), got ${sampleRate}`,
    );
  }
}

function checkIntents(intents: readonly string[], field: string): void {
  checkCount(intents, mirrorInputLimits.maxIntents, field);
  intents.forEach((intent, i) => checkIntent(intent, `${field}[${i}]`));
}

function checkIntent(intent: string, field: string): void {
  if (intent === "") throw new InvalidFieldError(field, "must not be empty");
  if (intent.length > mirrorInputLimits.maxIntentChars) {
    throw new InvalidFieldError(
      field,
      `must be at most ${mirrorInputLimits.maxIntentChars} characters, got ${intent.length}`,
    );
  }
  if (controlCharPattern.test(intent)) {
    throw new InvalidFieldError(field, `must not contain control characters, got ${quote(intent)}`);
  }
}

function checkCount(list: readonly unknown[], max: number, field: string): void {
  if (list.length > max) throw new InvalidFieldError(field, `must have at most ${max} entries, got ${list.length}`);
}

function checkIntegerRange(value: number, min: number, max: number, field: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidFieldError(field, `must be an integer in ${min}..${max}, got ${value}`);
  }
}

function isHostname(host: string): boolean {
  return host.length <= 253 && host.split(".").every((label) => hostnameLabelPattern.test(label));
}
