/**
 * The HTTP request sent to a shadow (or to a secondary), as a plain
 * description the dispatcher executes. Conventions, after Envoy's request
 * mirroring:
 * - the URL is the endpoint followed by the captured path
 *   (`http://shadow:8080/api` + `/orders?id=1`);
 * - the `Host` header is the captured host (or HTTP/2 `:authority`) with
 *   Envoy's `-shadow` suffix before any port (`orders.internal:8080` →
 *   `orders.internal-shadow:8080`), so shadow traffic is never mistaken for
 *   real in upstream logs; without a captured host, none is set and the
 *   client uses the endpoint's;
 * - {@link shadowMarkerHeader} names the mirror, so shadows and traces can
 *   tell mirrored traffic apart and a capturing proxy in front of a shadow
 *   does not mirror it again (see {@link isShadowTraffic});
 * - `traceparent` and `tracestate` are kept, so shadow calls join the
 *   original trace;
 * - hop-by-hop headers (RFC 9110 §7.6.1, and any named in `Connection`),
 *   HTTP/2 pseudo-headers and `content-length` are dropped: they describe the
 *   original connection and body framing, not the request;
 * - the body is the raw body when the capture had one, else the payload as
 *   JSON (`content-type: application/json`); GET and HEAD never carry a
 *   body (fetch forbids it).
 *
 * Headers are sent as stored, that is already redacted (see `redaction.ts`).
 */
import type { MirroredRequest } from "./model.js";

/** The header marking a request as mirrored; its value is the mirror_id. */
export const shadowMarkerHeader = "x-latticeforge-shadow";

/** Envoy's suffix for the host of a shadow request. */
export const shadowHostSuffix = "-shadow";

/**
 * Headers that describe one connection and are never forwarded (RFC 9110
 * §7.6.1 and the common non-standard ones), plus `content-length`, which the
 * client recomputes for the body it sends.
 */
export const droppedHeaders: readonly string[] = [
  "connection",
  "content-length",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Where and how long: the part of a mirror a shadow request needs. */
export interface ShadowTarget {
  /** Goes into {@link shadowMarkerHeader}. */
  readonly mirrorId: string;
  /** The shadow (or secondary) endpoint, validated as an absolute http(s) URL. */
  readonly endpoint: string;
  readonly timeoutMs: number;
}

/** An HTTP request to send, fully described. */
export interface ShadowRequest {
  readonly url: string;
  readonly method: string;
  /** Lowercase names. */
  readonly headers: Readonly<Record<string, string>>;
  /** A JSON text or the raw bytes; absent for no body. */
  readonly body?: string | Uint8Array;
  readonly timeoutMs: number;
}

const bodylessMethods = new Set(["GET", "HEAD"]);

/** Builds the request that mirrors `request` to `target` (see the module comment). */
export function buildShadowRequest(request: MirroredRequest, target: ShadowTarget): ShadowRequest {
  const connectionScoped = new Set(droppedHeaders);
  for (const token of (request.headers["connection"] ?? "").split(",")) {
    const name = token.trim().toLowerCase();
    if (name !== "") connectionScoped.add(name);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (name.startsWith(":") || name === "host" || connectionScoped.has(name)) continue;
    headers[name] = value;
  }
  const host = request.headers["host"] ?? request.headers[":authority"];
  if (host !== undefined && host !== "") headers["host"] = shadowHost(host);
  headers[shadowMarkerHeader] = target.mirrorId;

  let body: string | Uint8Array | undefined;
  if (!bodylessMethods.has(request.method)) {
    if (request.rawBody !== undefined) {
      body = request.rawBody;
    } else {
      body = JSON.stringify(request.payload);
      headers["content-type"] = "application/json";
    }
  }
  return {
    url: shadowUrl(target.endpoint, request.path),
    method: request.method,
    headers,
    ...(body !== undefined ? { body } : {}),
    timeoutMs: target.timeoutMs,
  };
}

/**
 * Envoy's shadow host: `-shadow` appended to the host, before the port if
 * there is one (`a.b:8080` → `a.b-shadow:8080`, `[::1]:80` →
 * `[::1]-shadow:80`). The result names the shadow for logs; it is not meant
 * to resolve.
 */
export function shadowHost(host: string): string {
  const close = host.lastIndexOf("]");
  const colon = host.lastIndexOf(":");
  const portStart = colon > close && (close >= 0 || host.indexOf(":") === colon) ? colon : -1;
  if (portStart < 0) return `${host}${shadowHostSuffix}`;
  return `${host.slice(0, portStart)}${shadowHostSuffix}${host.slice(portStart)}`;
}

/** The endpoint joined with an origin-form path, with exactly one `/` between them. */
export function shadowUrl(endpoint: string, path: string): string {
  return `${endpoint.replace(/\/+$/, "")}${path.startsWith("/") ? path : `/${path}`}`;
}

/**
 * Whether headers carry {@link shadowMarkerHeader}: such a request is mirror
 * traffic already and is never captured again (no mirror loops).
 */
export function isShadowTraffic(headers: Readonly<Record<string, string>>): boolean {
  return Object.hasOwn(headers, shadowMarkerHeader);
}
