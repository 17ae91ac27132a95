import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import type { HealthInput, InstanceInput } from "../../../server/core/registry/model.js";
import {
  validateHealthInput,
  validateInstanceInput,
  validateRegion,
  validateServiceName,
} from "../../../server/core/registry/validation.js";
import { healthInput, instanceInput, thrown } from "./builders.js";

const label63 = "a".repeat(63);
/** 253 characters: three labels of 63, one of 61, and three dots. */
const hostname253 = `${label63}.${label63}.${label63}.${"a".repeat(61)}`;

/** `count` metadata entries `k00`, `k01`, ... with values of `valueChars` characters. */
function metadata(count: number, valueChars = 1): Record<string, string> {
  return Object.fromEntries(
    Array.from({ length: count }, (_, i) => [`k${String(i).padStart(2, "0")}`, "v".repeat(valueChars)]),
  );
}

function expectInvalid(fn: () => void, field: string, reason: string | RegExp): void {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(InvalidFieldError);
  expect((error as InvalidFieldError).field).toBe(field);
  expect((error as InvalidFieldError).reason).toMatch(reason);
  expect(error.message.startsWith(`${field} `)).toBe(true);
}

describe("validateInstanceInput accepts", () => {
  it.each<[string, Partial<InstanceInput>]>([
    ["the seed's example instance", {}],
    ["a one-character instance_id", { instanceId: "a" }],
    ["an instance_id of 128 characters", { instanceId: "i".repeat(128) }],
    ["an instance_id with . _ : -", { instanceId: "A1.b_c:d-e" }],
    ["a service_name of 63 characters with . _ -", { serviceName: `${"s".repeat(60)}._-` }],
    ["an IPv4 endpoint at the edges of the octet and port ranges", { endpoint: "255.255.255.255:65535" }],
    ["an IPv4 endpoint of zeros with port 1", { endpoint: "0.0.0.0:1" }],
    ["a bracketed IPv6 loopback", { endpoint: "[::1]:443" }],
    ["a bracketed IPv6 address", { endpoint: "[2001:db8::1]:8080" }],
    ["a bracketed IPv4-mapped IPv6 address", { endpoint: "[::ffff:10.0.0.1]:80" }],
    ["a single-label hostname", { endpoint: "localhost:9000" }],
    ["a dotted hostname with hyphens and a digit-led label", { endpoint: "a-b.3com.example:80" }],
    ["a hostname label of 63 characters", { endpoint: `${label63}.example:80` }],
    ["a hostname of 253 characters", { endpoint: `${hostname253}:80` }],
    ["weight 1", { weight: 1 }],
    ["weight 100", { weight: 100 }],
    ["empty metadata", { metadata: {} }],
    ["64 metadata entries", { metadata: metadata(64) }],
    ["a metadata key of 128 characters with . _ / -", { metadata: { [`k${"x".repeat(123)}._/-`]: "v" } }],
    ["a metadata value of 1024 characters", { metadata: { k: "v".repeat(1024) } }],
    ["a metadata value of 1024 astral code points (2048 UTF-16 units)", { metadata: { k: "😀".repeat(1024) } }],
    ["an empty metadata value", { metadata: { k: "" } }],
    ["metadata of exactly 16 KiB", { metadata: metadata(16, 1021) }],
  ])("%s", (_, overrides) => {
    expect(() => validateInstanceInput(instanceInput(overrides))).not.toThrow();
  });
});

describe("validateInstanceInput rejects, naming the field and the rule", () => {
  it.each<[string, Partial<InstanceInput>, string, string | RegExp]>([
    ["an empty instance_id", { instanceId: "" }, "instance.instance_id", "must not be empty"],
    ["an instance_id starting with -", { instanceId: "-a" }, "instance.instance_id", /starting with a letter or digit, got "-a"$/],
    ["an instance_id with a space", { instanceId: "a b" }, "instance.instance_id", /got "a b"$/],
    ["an instance_id with a slash", { instanceId: "a/b" }, "instance.instance_id", /got "a\/b"$/],
    ["an instance_id of 129 characters", { instanceId: "i".repeat(129) }, "instance.instance_id", /at most 128/],
    ["an empty service_name", { serviceName: "" }, "instance.service_name", "must not be empty"],
    ["a service_name with a colon", { serviceName: "a:b" }, "instance.service_name", /got "a:b"$/],
    ["a service_name starting with _", { serviceName: "_svc" }, "instance.service_name", /got "_svc"$/],
    ["a service_name of 64 characters", { serviceName: "s".repeat(64) }, "instance.service_name", /at most 63/],
    ["an empty region", { region: "" }, "instance.region", "must not be empty"],
    ["a region with a space", { region: "eu west" }, "instance.region", /got "eu west"$/],
    ["an empty zone", { zone: "" }, "instance.zone", "must not be empty"],
    ["a zone with a slash", { zone: "z/1" }, "instance.zone", /got "z\/1"$/],
    ["an empty endpoint", { endpoint: "" }, "instance.endpoint", "must not be empty"],
    ["an endpoint without a port", { endpoint: "10.0.0.1" }, "instance.endpoint", 'must be host:port, got "10.0.0.1"'],
    ["an endpoint without a host", { endpoint: ":8080" }, "instance.endpoint", "host must not be empty"],
    ["port 0", { endpoint: "10.0.0.1:0" }, "instance.endpoint", 'port must be 1..65535, got "0"'],
    ["port 65536", { endpoint: "10.0.0.1:65536" }, "instance.endpoint", 'port must be 1..65535, got "65536"'],
    ["a port with a plus sign", { endpoint: "10.0.0.1:+80" }, "instance.endpoint", /port must be 1\.\.65535/],
    ["a negative port", { endpoint: "10.0.0.1:-1" }, "instance.endpoint", /port must be 1\.\.65535/],
    ["a port with a leading zero", { endpoint: "10.0.0.1:080" }, "instance.endpoint", /port must be 1\.\.65535/],
    ["a named port", { endpoint: "10.0.0.1:http" }, "instance.endpoint", /port must be 1\.\.65535/],
    ["an empty port", { endpoint: "10.0.0.1:" }, "instance.endpoint", /port must be 1\.\.65535/],
    ["an IPv4 octet over 255", { endpoint: "256.0.0.1:80" }, "instance.endpoint", /octets 0\.\.255, got "256\.0\.0\.1"$/],
    ["an IPv4 address of three octets", { endpoint: "1.2.3:80" }, "instance.endpoint", /octets 0\.\.255/],
    ["an unbracketed IPv6 address", { endpoint: "::1:80" }, "instance.endpoint", /IPv6 host must be in brackets/],
    ["an unclosed IPv6 bracket", { endpoint: "[::1:80" }, "instance.endpoint", /IPv6 address in brackets/],
    ["brackets around a non-address", { endpoint: "[not-ip]:80" }, "instance.endpoint", /IPv6 address in brackets/],
    ["brackets around an IPv4 address", { endpoint: "[10.0.0.1]:80" }, "instance.endpoint", /IPv6 address in brackets/],
    ["an IPv6 zone id", { endpoint: "[fe80::1%eth0]:80" }, "instance.endpoint", /IPv6 address in brackets/],
    ["a hostname label starting with -", { endpoint: "-host:80" }, "instance.endpoint", /host must be a hostname of dot-separated labels/],
    ["a hostname label ending with -", { endpoint: "host-.example:80" }, "instance.endpoint", /host must be a hostname of dot-separated labels/],
    ["an empty hostname label", { endpoint: "a..b:80" }, "instance.endpoint", /host must be a hostname of dot-separated labels/],
    ["a hostname with a trailing dot", { endpoint: "example.com.:80" }, "instance.endpoint", /host must be a hostname of dot-separated labels/],
    ["a hostname with an underscore", { endpoint: "under_score.example:80" }, "instance.endpoint", /host must be a hostname of dot-separated labels/],
    ["a hostname label of 64 characters", { endpoint: `${"a".repeat(64)}.example:80` }, "instance.endpoint", /host must be a hostname of dot-separated labels/],
    ["a hostname of 254 characters", { endpoint: `${label63}.${label63}.${label63}.${"a".repeat(62)}:80` }, "instance.endpoint", "host must be at most 253 characters, got 254"],
    ["weight 0", { weight: 0 }, "instance.weight", "must be 1..100, got 0"],
    ["weight 101", { weight: 101 }, "instance.weight", "must be 1..100, got 101"],
    ["a negative weight", { weight: -5 }, "instance.weight", "must be 1..100, got -5"],
    ["a fractional weight", { weight: 1.5 }, "instance.weight", "must be an integer, got 1.5"],
    ["65 metadata entries", { metadata: metadata(65) }, "instance.metadata", "must have at most 64 entries, got 65"],
    ["an empty metadata key", { metadata: { "": "v" } }, 'instance.metadata[""]', "key must be 1..128 characters, got 0"],
    ["a metadata key of 129 characters", { metadata: { ["k".repeat(129)]: "v" } }, `instance.metadata["${"k".repeat(64)}…"]`, "key must be 1..128 characters, got 129"],
    ["a metadata key starting with -", { metadata: { "-k": "v" } }, 'instance.metadata["-k"]', /key must be .* got "-k"$/],
    ["a metadata key with a space", { metadata: { "a b": "v" } }, 'instance.metadata["a b"]', /key must be .* got "a b"$/],
    ["a metadata value of 1025 characters", { metadata: { k: "v".repeat(1025) } }, 'instance.metadata["k"]', "value must be at most 1024 characters, got 1025"],
    ["a metadata value of 1025 astral code points", { metadata: { k: "😀".repeat(1025) } }, 'instance.metadata["k"]', "value must be at most 1024 characters, got 1025"],
    ["metadata of 16 KiB plus one byte", { metadata: { ...metadata(16, 1021), x: "" } }, "instance.metadata", "keys and values must total at most 16384 bytes, got 16385"],
  ])("%s", (_, overrides, field, reason) => {
    expectInvalid(() => validateInstanceInput(instanceInput(overrides)), field, reason);
  });

  it("prefixes fields with the given path", () => {
    expectInvalid(() => validateInstanceInput(instanceInput({ weight: 0 }), "instances[3]"), "instances[3].weight", "must be 1..100, got 0");
  });

  it("quotes at most 64 characters of a long offending value", () => {
    const error = thrown(() => validateInstanceInput(instanceInput({ instanceId: `-${"x".repeat(500)}` })));
    expect(error.message).toContain(`got "-${"x".repeat(63)}…"`);
    expect(error.message.length).toBeLessThan(200);
  });
});

describe("validateHealthInput", () => {
  it.each<[string, Partial<HealthInput>]>([
    ["zero latency and failures", { latencyMs: 0, consecutiveFailures: 0 }],
    ["an unhealthy result with a reason of 1024 characters", { healthy: false, consecutiveFailures: 7, reason: "r".repeat(1024) }],
    ["no reason", {}],
  ])("accepts %s", (_, overrides) => {
    expect(() => validateHealthInput(healthInput("inst-1", overrides))).not.toThrow();
  });

  it.each<[string, Partial<HealthInput>, string, string | RegExp]>([
    ["an empty instance_id", { instanceId: "" }, "status.instance_id", "must not be empty"],
    ["a malformed instance_id", { instanceId: "a b" }, "status.instance_id", /got "a b"$/],
    ["a negative latency", { latencyMs: -1 }, "status.latency_ms", "must be >= 0, got -1"],
    ["a fractional latency", { latencyMs: 0.5 }, "status.latency_ms", "must be an integer, got 0.5"],
    ["negative consecutive failures", { consecutiveFailures: -2 }, "status.consecutive_failures", "must be >= 0, got -2"],
    ["a reason of 1025 characters", { reason: "r".repeat(1025) }, "status.reason", "must be at most 1024 characters, got 1025"],
  ])("rejects %s", (_, overrides, field, reason) => {
    expectInvalid(() => validateHealthInput(healthInput("inst-1", overrides)), field, reason);
  });

  it("prefixes fields with the given path", () => {
    expectInvalid(() => validateHealthInput(healthInput("inst-1", { latencyMs: -1 }), "results[2]"), "results[2].latency_ms", "must be >= 0, got -1");
  });
});

describe("query-field validators", () => {
  it.each([
    ["validateServiceName", validateServiceName],
    ["validateRegion", validateRegion],
  ] as const)("%s accepts a well-formed name and rejects a bad one under the given field", (_, validate) => {
    expect(() => validate("us-east.1_a", "service_name")).not.toThrow();
    expectInvalid(() => validate("", "exclude_regions[1]"), "exclude_regions[1]", "must not be empty");
    expectInvalid(() => validate("a b", "region"), "region", /got "a b"$/);
  });
});
