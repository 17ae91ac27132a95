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

/**
 * `headers` with the value of every sensitive header (the defaults plus
 * `extra`) replaced by {@link redactedValue}. Returns `headers` itself when
 * nothing is redacted.
 */
export function redactHeaders(
  headers: Readonly<Record<string, string>>,
  extra: readonly string[] = [],
): Readonly<Record<string, string>> {
  const sensitive = new Set(defaultRedactedHeaders);
  for (const name of extra) sensitive.add(name.toLowerCase());
  let redacted: Record<string, string> | undefined;
  for (const name of Object.keys(headers)) {
    if (!sensitive.has(name.toLowerCase()) || headers[name] === redactedValue) continue;
    redacted ??= { ...headers };
    redacted[name] = redactedValue;
  }
  return redacted ?? headers;
}

/**
 * `request` with its headers redacted for a mirror configured with
 * `redactHeaders` (see {@link redactHeaders}). Returns `request` itself when
 * nothing is redacted.
 */
export function redactRequest(request: MirroredRequest, extra: readonly string[] = []): MirroredRequest {
  const headers = redactHeaders(request.headers, extra);
  return headers === request.headers ? request : { ...request, headers };
}
