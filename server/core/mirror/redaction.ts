/**
 * Redaction of sensitive headers before a mirrored request is stored or sent:
 * a shadow environment and the mirror's storage must never hold production
 * credentials. The header stays (so the shadow sees that it was there) with
 * the value {@link redactedValue}.
 *
 * Names compare case-insensitively; captured header names are lowercase
 * already (see `validateCaptureInput`), configured ones are lowercased here.
 */
import type { MirroredRequest } from "./model.js";

/** What a redacted header's value becomes. */
export const redactedValue = "[REDACTED]";

/**
 * Headers always redacted, whatever a mirror configures: credentials and
 * session state.
 */
export const defaultRedactedHeaders: readonly string[] = [
  "authorization",
  "cookie",
  "proxy-authorization",
  "set-cookie",
  "x-api-key",
];

/** No headers besides the defaults. */
const noExtra: readonly string[] = [];

/**
 * `headers` with the value of every sensitive header (the defaults plus
 * `extra`) replaced by {@link redactedValue}. Returns `headers` itself when
 * nothing is redacted.
 */
export function redactHeaders(
  headers: Readonly<Record<string, string>>,
  extra: readonly string[] = noExtra,
): Readonly<Record<string, string>> {
  const sensitive = sensitiveHeaders(extra);
  let redacted: Record<string, string> | undefined;
  for (const name of Object.keys(headers)) {
    if (!sensitive.has(name.toLowerCase()) || headers[name] === redactedValue) continue;
    redacted ??= { ...headers };
    redacted[name] = redactedValue;
  }
  return redacted ?? headers;
}

/**
 * `request` (a captured request of either form) with its headers redacted
 * for a mirror configured with `redactHeaders` (see {@link redactHeaders}).
 * Returns `request` itself when nothing is redacted.
 */
export function redactRequest<R extends Pick<MirroredRequest, "headers">>(request: R, extra: readonly string[] = noExtra): R {
  const headers = redactHeaders(request.headers, extra);
  return headers === request.headers ? request : { ...request, headers };
}

/**
 * The lowercase names redacted for each `extra` list seen: a mirror's
 * config keeps its list, and lists are never changed once made.
 */
const sensitiveByExtra = new WeakMap<readonly string[], ReadonlySet<string>>();

/** The defaults plus `extra`, lowercased; built once per list. */
function sensitiveHeaders(extra: readonly string[]): ReadonlySet<string> {
  let sensitive = sensitiveByExtra.get(extra);
  if (sensitive === undefined) {
    sensitive = new Set([...defaultRedactedHeaders, ...extra.map((name) => name.toLowerCase())]);
    sensitiveByExtra.set(extra, sensitive);
  }
  return sensitive;
}
