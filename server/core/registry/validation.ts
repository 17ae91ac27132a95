/**
 * Field rules of the registry API. Each check throws an
 * {@link InvalidFieldError} naming the field as the API spells it
 * (`instance.weight`, `instance.metadata["k"]`, `status.instance_id`) and the
 * rule with the value seen (`must be 1..100, got 0`).
 */
import { isIP } from "node:net";
import { InvalidFieldError } from "../errors.js";
import type { HealthInput, InstanceInput } from "./model.js";

/** Re-exported beside {@link validateHealthInput}, which checks it. */
export type { HealthInput } from "./model.js";

const instanceIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const metadataKeyPattern = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
const hostnameLabelPattern = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const portPattern = /^[1-9][0-9]{0,4}$/;
/** A host of digits and dots only is read as IPv4 (as resolvers do), never as a hostname. */
const numericHostPattern = /^[0-9.]+$/;

const maxMetadataEntries = 64;
const maxMetadataKeyChars = 128;
const maxTextChars = 1024;
const maxMetadataBytes = 16 * 1024;
const maxHostnameChars = 253;
/** How much of an offending value a message quotes. */
const maxQuotedChars = 64;

/**
 * Checks the client-supplied part of an instance (a `ServiceInstance`
 * message).
 *
 * @param fieldPrefix the message's field path, e.g. `instance` or `instances[3]`
 * @throws InvalidFieldError for the first field that breaks a rule
 */
export function validateInstanceInput(input: InstanceInput, fieldPrefix = "instance"): void {
  validateInstanceId(input.instanceId, `${fieldPrefix}.instance_id`);
  validateServiceName(input.serviceName, `${fieldPrefix}.service_name`);
  validateEndpoint(input.endpoint, `${fieldPrefix}.endpoint`);
  validateRegion(input.region, `${fieldPrefix}.region`);
  checkName(input.zone, `${fieldPrefix}.zone`);
  validateWeight(input.weight, `${fieldPrefix}.weight`);
  validateMetadata(input.metadata, `${fieldPrefix}.metadata`);
}

/**
 * Checks the client-supplied part of a health result (a `HealthStatus`
 * message).
 *
 * @param fieldPrefix the message's field path, e.g. `status` or `results[0]`
 * @throws InvalidFieldError for the first field that breaks a rule
 */
export function validateHealthInput(input: HealthInput, fieldPrefix = "status"): void {
  validateInstanceId(input.instanceId, `${fieldPrefix}.instance_id`);
  checkNonNegativeInteger(input.latencyMs, `${fieldPrefix}.latency_ms`);
  checkNonNegativeInteger(input.consecutiveFailures, `${fieldPrefix}.consecutive_failures`);
  if (input.reason !== undefined) checkTextLength(input.reason, `${fieldPrefix}.reason`, "");
}

/**
 * Checks an instance id: 1..128 letters, digits and `. _ : -`, starting with
 * a letter or digit.
 *
 * @throws InvalidFieldError naming `field`
 */
export function validateInstanceId(instanceId: string, field: string): void {
  if (instanceId === "") throw new InvalidFieldError(field, "must not be empty");
  if (!instanceIdPattern.test(instanceId)) {
    throw new InvalidFieldError(
      field,
      `must be at most 128 letters, digits and . _ : - starting with a letter or digit, got ${quote(instanceId)}`,
    );
  }
}

/**
 * Checks a service name: 1..63 letters, digits and `. _ -`, starting with a
 * letter or digit. Also for the service names of query requests.
 *
 * @throws InvalidFieldError naming `field`
 */
export function validateServiceName(serviceName: string, field: string): void {
  checkName(serviceName, field);
}

/** Whether `name` passes {@link validateServiceName}, without building an error (for names clients merely ask for). */
export function isValidServiceName(name: string): boolean {
  return namePattern.test(name);
}

/**
 * Checks a region name (zones follow the same rule): 1..63 letters, digits
 * and `. _ -`, starting with a letter or digit. Also for the regions of query
 * requests.
 *
 * @throws InvalidFieldError naming `field`
 */
export function validateRegion(region: string, field: string): void {
  checkName(region, field);
}

function checkName(value: string, field: string): void {
  if (value === "") throw new InvalidFieldError(field, "must not be empty");
  if (!namePattern.test(value)) {
    throw new InvalidFieldError(
      field,
      `must be at most 63 letters, digits and . _ - starting with a letter or digit, got ${quote(value)}`,
    );
  }
}

/**
 * `host:port`. The host is an RFC 1123 hostname, a dotted IPv4 address
 * (octets 0..255) or an IPv6 address in brackets (no zone id: a link-local
 * address is meaningless to other hosts); the port is 1..65535 in plain
 * decimal.
 */
function validateEndpoint(endpoint: string, field: string): void {
  if (endpoint === "") throw new InvalidFieldError(field, "must not be empty");
  const parts = splitHostPort(endpoint);
  if (parts === undefined) throw new InvalidFieldError(field, `must be host:port, got ${quote(endpoint)}`);
  checkHost(parts.host, field);
  const { port } = parts;
  if (!portPattern.test(port) || Number(port) > 65_535) {
    throw new InvalidFieldError(field, `port must be 1..65535, got ${quote(port)}`);
  }
}

/**
 * An endpoint split at its last colon into host (an IPv6 host keeps its
 * brackets) and port text, or undefined without a colon. No checks: see
 * {@link validateInstanceInput} for the rules.
 */
export function splitHostPort(endpoint: string): { readonly host: string; readonly port: string } | undefined {
  const colon = endpoint.lastIndexOf(":");
  return colon < 0 ? undefined : { host: endpoint.slice(0, colon), port: endpoint.slice(colon + 1) };
}

function checkHost(host: string, field: string): void {
  if (host === "") throw new InvalidFieldError(field, "host must not be empty");
  if (host.startsWith("[")) {
    const address = host.endsWith("]") ? host.slice(1, -1) : "";
    if (isIP(address) !== 6 || address.includes("%")) {
      throw new InvalidFieldError(field, `host must be an IPv6 address in brackets, got ${quote(host)}`);
    }
    return;
  }
  if (host.includes(":")) {
    throw new InvalidFieldError(field, `IPv6 host must be in brackets, got ${quote(host)}`);
  }
  if (numericHostPattern.test(host)) {
    if (isIP(host) !== 4) {
      throw new InvalidFieldError(field, `IPv4 host must be four dotted octets 0..255, got ${quote(host)}`);
    }
    return;
  }
  if (host.length > maxHostnameChars) {
    throw new InvalidFieldError(field, `host must be at most ${maxHostnameChars} characters, got ${host.length}`);
  }
  if (!host.split(".").every((label) => hostnameLabelPattern.test(label))) {
    throw new InvalidFieldError(
      field,
      `host must be a hostname of dot-separated labels of 1..63 letters, digits and - (not first or last), got ${quote(host)}`,
    );
  }
}

function validateWeight(weight: number, field: string): void {
  if (!Number.isInteger(weight)) throw new InvalidFieldError(field, `must be an integer, got ${weight}`);
  if (weight < 1 || weight > 100) throw new InvalidFieldError(field, `must be 1..100, got ${weight}`);
}

/**
 * At most 64 entries; keys 1..128 letters, digits and `. _ / -` starting with
 * a letter or digit; values at most 1024 characters; keys and values at most
 * 16 KiB of UTF-8 in total.
 */
function validateMetadata(metadata: Readonly<Record<string, string>>, field: string): void {
  const entries = Object.entries(metadata);
  if (entries.length > maxMetadataEntries) {
    throw new InvalidFieldError(field, `must have at most ${maxMetadataEntries} entries, got ${entries.length}`);
  }
  let bytes = 0;
  for (const [key, value] of entries) {
    const entryField = `${field}[${quote(key)}]`;
    if (key.length === 0 || key.length > maxMetadataKeyChars) {
      throw new InvalidFieldError(entryField, `key must be 1..${maxMetadataKeyChars} characters, got ${key.length}`);
    }
    if (!metadataKeyPattern.test(key)) {
      throw new InvalidFieldError(
        entryField,
        `key must be letters, digits and . _ / - starting with a letter or digit, got ${quote(key)}`,
      );
    }
    checkTextLength(value, entryField, "value ");
    bytes += Buffer.byteLength(key, "utf8") + Buffer.byteLength(value, "utf8");
  }
  if (bytes > maxMetadataBytes) {
    throw new InvalidFieldError(field, `keys and values must total at most ${maxMetadataBytes} bytes, got ${bytes}`);
  }
}

function checkNonNegativeInteger(value: number, field: string): void {
  if (!Number.isInteger(value)) throw new InvalidFieldError(field, `must be an integer, got ${value}`);
  if (value < 0) throw new InvalidFieldError(field, `must be >= 0, got ${value}`);
}

/** At most 1024 characters (Unicode code points). */
function checkTextLength(text: string, field: string, subject: string): void {
  // Code points never outnumber UTF-16 units, so most texts need no count.
  if (text.length <= maxTextChars) return;
  let chars = 0;
  for (const _ of text) chars++;
  if (chars > maxTextChars) {
    throw new InvalidFieldError(field, `${subject}must be at most ${maxTextChars} characters, got ${chars}`);
  }
}

/** The value as a JSON string, cut to a readable length. */
function quote(value: string): string {
  return JSON.stringify(value.length > maxQuotedChars ? `${value.slice(0, maxQuotedChars)}…` : value);
}
