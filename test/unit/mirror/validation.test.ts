import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import { defaultMirrorLimits } from "../../../server/core/mirror/model.js";
import {
  validateCaptureInput,
  validateHttpEndpoint,
  validateMirrorConfigInput,
  type CaptureInput,
  type MirrorConfigInput,
} from "../../../server/core/mirror/validation.js";
import { captureInput, configInput, mirrorConfig, nowMs, thrown } from "./builders.js";

function configError(overrides: Partial<MirrorConfigInput>): InvalidFieldError {
  const error = thrown(() => validateMirrorConfigInput(configInput(overrides), nowMs));
  expect(error).toBeInstanceOf(InvalidFieldError);
  return error as InvalidFieldError;
}

function captureError(overrides: Partial<CaptureInput>): InvalidFieldError {
  const error = thrown(() => validateCaptureInput(captureInput(overrides), nowMs));
  expect(error).toBeInstanceOf(InvalidFieldError);
  return error as InvalidFieldError;
}

describe("validateMirrorConfigInput", () => {
  it("fills in the defaults: enabled, buffer size, empty lists, no secondary", () => {
    expect(validateMirrorConfigInput(configInput(), nowMs)).toEqual(mirrorConfig());
  });

  it.each<[string, Partial<MirrorConfigInput>, Record<string, unknown>]>([
    ["SAMPLED with a rate", { mode: "sampled", sampleRate: 0.05 }, { mode: "sampled", sampleRate: 0.05 }],
    ["SAMPLED at the resolution's edge", { mode: "sampled", sampleRate: 0.00005 }, { sampleRate: 0.00005 }],
    ["FILTERED with include only", { mode: "filtered", includeIntents: ["a"] }, { includeIntents: ["a"] }],
    ["FILTERED with exclude only", { mode: "filtered", excludeIntents: ["b"] }, { excludeIntents: ["b"] }],
    ["REPLAY", { mode: "replay" }, { mode: "replay" }],
    ["disabled on creation", { enabled: false }, { enabled: false }],
    ["buffer_size 0 means the default", { bufferSize: 0 }, { bufferSize: 1000 }],
    ["an explicit buffer size", { bufferSize: 5 }, { bufferSize: 5 }],
    ["redact_headers lowercased", { redactHeaders: ["X-Session"] }, { redactHeaders: ["x-session"] }],
    ["ignore_fields with wildcards", { ignoreFields: ["ts", "items[*].id", 'a["x.y"]'] }, { ignoreFields: ["ts", "items[*].id", 'a["x.y"]'] }],
    ["an https endpoint with a base path", { shadowEndpoint: "https://shadow.internal:8443/api" }, { shadowEndpoint: "https://shadow.internal:8443/api" }],
    ["a secondary endpoint", { secondaryEndpoint: "http://primary-2:80" }, { secondaryEndpoint: "http://primary-2:80" }],
    ["the largest timeout", { timeoutMs: 600_000 }, { timeoutMs: 600_000 }],
  ])("accepts %s", (_, overrides, expected) => {
    expect(validateMirrorConfigInput(configInput(overrides), nowMs)).toMatchObject(expected);
  });

  it.each<[string, Partial<MirrorConfigInput>, string, string]>([
    ["no mirror_id", { mirrorId: "" }, "mirror.mirror_id", "must not be empty"],
    ["a mirror_id with a space", { mirrorId: "a b" }, "mirror.mirror_id", 'must be at most 128 letters, digits and . _ : - starting with a letter or digit, got "a b"'],
    ["no source_service", { sourceService: undefined }, "mirror.source_service", "must not be empty"],
    ["an unset mode", { mode: undefined }, "mirror.mode", "must be one of FULL, SAMPLED, FILTERED, REPLAY, got unset"],
    ["a sample_rate above 1", { sampleRate: 1.5 }, "mirror.sample_rate", "must be in [0, 1], got 1.5"],
    ["a negative sample_rate", { sampleRate: -0.1 }, "mirror.sample_rate", "must be in [0, 1], got -0.1"],
    ["a NaN sample_rate", { sampleRate: Number.NaN }, "mirror.sample_rate", "must be in [0, 1], got NaN"],
    ["SAMPLED at rate 0", { mode: "sampled", sampleRate: 0 }, "mirror.sample_rate", "must be > 0 in SAMPLED mode, got 0"],
    ["SAMPLED below the resolution", { mode: "sampled", sampleRate: 0.00001 }, "mirror.sample_rate", "must be at least 0.00005 in SAMPLED mode (the sampling resolution is 1/10000), got 0.00001"],
    ["FILTERED without intents", { mode: "filtered" }, "mirror.include_intents", "or exclude_intents must name at least one intent in FILTERED mode"],
    ["intents outside FILTERED", { includeIntents: ["a", "b"] }, "mirror.include_intents", "must be empty unless mode is FILTERED, got 2 in FULL mode"],
    ["exclusions outside FILTERED", { mode: "sampled", sampleRate: 0.1, excludeIntents: ["a"] }, "mirror.exclude_intents", "must be empty unless mode is FILTERED, got 1 in SAMPLED mode"],
    ["an empty intent", { mode: "filtered", includeIntents: ["a", ""] }, "mirror.include_intents[1]", "must not be empty"],
    ["an intent too long", { mode: "filtered", excludeIntents: ["x".repeat(257)] }, "mirror.exclude_intents[0]", "must be at most 256 characters, got 257"],
    ["an intent with a newline", { mode: "filtered", includeIntents: ["a\nb"] }, "mirror.include_intents[0]", 'must not contain control characters, got "a\\nb"'],
    ["timeout_ms 0", { timeoutMs: 0 }, "mirror.timeout_ms", "must be an integer in 1..600000, got 0"],
    ["timeout_ms unset", { timeoutMs: undefined }, "mirror.timeout_ms", "must be an integer in 1..600000, got 0"],
    ["a fractional timeout", { timeoutMs: 1.5 }, "mirror.timeout_ms", "must be an integer in 1..600000, got 1.5"],
    ["a timeout over 10 minutes", { timeoutMs: 600_001 }, "mirror.timeout_ms", "must be an integer in 1..600000, got 600001"],
    ["a negative buffer", { bufferSize: -1 }, "mirror.buffer_size", "must be an integer in 1..100000, got -1"],
    ["a huge buffer", { bufferSize: 100_001 }, "mirror.buffer_size", "must be an integer in 1..100000, got 100001"],
    ["a bad ignore path", { ignoreFields: ["a..b"] }, "mirror.ignore_fields[0]", 'must be a key of letters, digits, _ and - (or ["…"] for others) at offset 2 of "a..b"'],
    ["a bad redact header", { redactHeaders: ["x session"] }, "mirror.redact_headers[0]", 'must be an HTTP header name of at most 256 token characters, got "x session"'],
    ["a bad secondary", { secondaryEndpoint: "ftp://x" }, "mirror.secondary_endpoint", 'must be an absolute http:// or https:// URL, got "ftp://x"'],
  ])("rejects %s", (_, overrides, field, reason) => {
    const error = configError(overrides);
    expect([error.field, error.reason]).toEqual([field, reason]);
    expect(error.message).toBe(`${field} ${reason}`);
  });

  it("honours a smaller configured maximum buffer", () => {
    const error = thrown(() => validateMirrorConfigInput(configInput({ bufferSize: 11 }), nowMs, defaultMirrorLimits({ maxBufferSize: 10 })));
    expect((error as InvalidFieldError).reason).toBe("must be an integer in 1..10, got 11");
  });

  it("names the field under a caller's prefix", () => {
    const error = thrown(() => validateMirrorConfigInput(configInput({ timeoutMs: 0 }), nowMs, undefined, "mirrors[2]"));
    expect((error as InvalidFieldError).field).toBe("mirrors[2].timeout_ms");
  });

  it("copies the input's lists, so later changes to them do not leak in", () => {
    const include = ["a"];
    const config = validateMirrorConfigInput(configInput({ mode: "filtered", includeIntents: include }), nowMs);
    include.push("b");
    expect(config.includeIntents).toEqual(["a"]);
  });
});

describe("validateHttpEndpoint", () => {
  it.each([
    "http://shadow:8080",
    "http://shadow",
    "https://shadow.example.com/base/path",
    "http://10.0.0.1:65535",
    "http://[::1]:8080",
    "http://localhost/",
  ])("accepts %s", (endpoint) => {
    expect(() => validateHttpEndpoint(endpoint, "e")).not.toThrow();
  });

  it.each<[string, string]>([
    ["", "must not be empty"],
    ["shadow:8080", 'must be an absolute http:// or https:// URL, got "shadow:8080"'],
    ["grpc://shadow:8080", 'must be an absolute http:// or https:// URL, got "grpc://shadow:8080"'],
    ["http://user:pw@shadow", 'must not contain credentials, got "http://user:pw@shadow"'],
    ["http://shadow/a?b=c", 'must not have a query or fragment (request paths are appended), got "http://shadow/a?b=c"'],
    ["http://", 'must be a valid URL, got "http://"'],
    ["http://shadow:0", 'port must be 1..65535, got "0"'],
    ["http://shadow:65536", 'must be a valid URL, got "http://shadow:65536"'],
    ["http://shadow:", 'port must be 1..65535, got ""'],
    ["http://1.2.3", 'host must be written in canonical form ("1.2.0.3"), got "1.2.3"'],
    ["http://bad_host", 'host must be a hostname of dot-separated labels of 1..63 letters, digits and - (not first or last), got "bad_host"'],
    ["http://-a.b", 'host must be a hostname of dot-separated labels of 1..63 letters, digits and - (not first or last), got "-a.b"'],
  ])("rejects %j", (endpoint, reason) => {
    const error = thrown(() => validateHttpEndpoint(endpoint, "mirror.shadow_endpoint"));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).reason).toBe(reason);
  });
});

describe("validateCaptureInput", () => {
  it("builds a mirrored request stamped with the capture time", () => {
    expect(validateCaptureInput(captureInput({ headers: { "X-Request-Id": "r", Authorization: "Bearer t" } }), nowMs)).toEqual({
      requestId: "req-1",
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      sourceService: "orders",
      intent: "create_order",
      payload: { sku: "A-1", qty: 2 },
      headers: { "x-request-id": "r", authorization: "Bearer t" },
      method: "POST",
      path: "/orders",
      mirroredAtMs: nowMs,
    });
  });

  it.each<[string, Partial<CaptureInput>, Record<string, unknown>]>([
    ["method and path default to POST /", { method: undefined, path: "" }, { method: "POST", path: "/" }],
    ["a lowercase method is upper-cased", { method: "get" }, { method: "GET" }],
    ["an empty trace id is kept empty", { traceId: "" }, { traceId: "" }],
    ["no payload means {}", { payload: undefined }, { payload: {} }],
    ["a raw body is kept", { rawBody: new Uint8Array([1, 2]) }, { rawBody: new Uint8Array([1, 2]) }],
    ["a production response is kept", { productionResponse: [1, "a", null] }, { productionResponse: [1, "a", null] }],
    ["pseudo-headers are accepted", { headers: { ":authority": "orders:80" } }, { headers: { ":authority": "orders:80" } }],
  ])("%s", (_, overrides, expected) => {
    expect(validateCaptureInput(captureInput(overrides), nowMs)).toMatchObject(expected);
  });

  it.each<[string, Partial<CaptureInput>, string, string]>([
    ["no request_id", { requestId: "" }, "request.request_id", "must not be empty"],
    ["a request_id with a space", { requestId: "a b" }, "request.request_id", 'must be 1..256 visible ASCII characters, got "a b"'],
    ["a malformed trace_id", { traceId: "xyz" }, "request.trace_id", 'must be 32 lowercase hex digits, got "xyz"'],
    ["no source_service", { sourceService: "" }, "request.source_service", "must not be empty"],
    ["no intent", { intent: undefined }, "request.intent", "must not be empty"],
    ["a bad method", { method: "GE T" }, "request.method", 'must be an HTTP method token, got "GE T"'],
    ["a relative path", { path: "orders" }, "request.path", 'must start with / and hold only visible ASCII without # (percent-encode others), got "orders"'],
    ["a path with a fragment", { path: "/a#b" }, "request.path", 'must start with / and hold only visible ASCII without # (percent-encode others), got "/a#b"'],
    ["header injection", { headers: { "x-a": "1\r\nx-b: 2" } }, 'request.headers["x-a"]', "value must not contain CR, LF or NUL"],
    ["a header name with a space", { headers: { "x a": "1" } }, 'request.headers["x a"]', 'must be an HTTP header name of at most 256 token characters, got "x a"'],
    ["a header repeated in another case", { headers: { "X-A": "1", "x-a": "2" } }, 'request.headers["x-a"]', 'repeats header "x-a" (names are case-insensitive)'],
    ["a non-finite payload number", { payload: { a: [1, Number.POSITIVE_INFINITY] } }, 'request.payload["a"][1]', "must be a finite number, got Infinity"],
    ["an array payload", { payload: [] as unknown as CaptureInput["payload"] }, "request.payload", "must be a JSON object"],
    ["a NaN in the production response", { productionResponse: { x: Number.NaN } }, 'request.production_response["x"]', "must be a finite number, got NaN"],
  ])("rejects %s", (_, overrides, field, reason) => {
    const error = captureError(overrides);
    expect([error.field, error.reason]).toEqual([field, reason]);
  });

  it.each<[string, Partial<CaptureInput>, string, string]>([
    ["a payload over the byte limit", { payload: { a: "x".repeat(100) } }, "request.payload", "must encode to at most 64 bytes of JSON, got 108"],
    ["a raw body over the limit", { rawBody: new Uint8Array(65) }, "request.raw_body", "must be at most 64 bytes, got 65"],
    ["too many headers", { headers: { a: "1", b: "2", c: "3" } }, "request.headers", "must have at most 2 entries, got 3"],
    ["headers over the byte limit", { headers: { a: "x".repeat(64) } }, "request.headers", "names and values must total at most 64 bytes, got 65"],
  ])("rejects %s under small limits", (_, overrides, field, reason) => {
    const limits = defaultMirrorLimits({ maxPayloadBytes: 64, maxRawBodyBytes: 64, maxHeaders: 2, maxHeaderBytes: 64 });
    const error = thrown(() => validateCaptureInput(captureInput(overrides), nowMs, limits));
    expect([(error as InvalidFieldError).field, (error as InvalidFieldError).reason]).toEqual([field, reason]);
  });

  it("rejects a payload nested deeper than 64 levels", () => {
    let deep: Record<string, unknown> = {};
    const payload = deep;
    for (let i = 0; i < 70; i++) {
      const next = {};
      deep["n"] = next;
      deep = next;
    }
    const error = captureError({ payload: payload as CaptureInput["payload"] });
    expect(error.reason).toBe("must nest at most 64 levels deep");
  });
});
