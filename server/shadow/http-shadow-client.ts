import { isIP } from "node:net";
import { UnavailableError } from "../core/errors.js";
import { Pool } from "undici";
import type { JsonValue } from "../core/mirror/model.js";
import { mirrorInputLimits } from "../core/mirror/validation.js";
import type { ShadowOutcome } from "../core/mirror/outcome.js";
import type { ShadowRequest } from "../core/mirror/shadow-request.js";

/**
 * Sends shadow requests; every failure of a shadow is an outcome, never an
 * exception. Only closing the client (the server shutting down) is one: a
 * request cut short by it says nothing about the shadow.
 */
export interface ShadowClient {
  /** @throws ShadowClientClosedError when the client closed before the answer was complete */
  send(request: ShadowRequest): Promise<ShadowOutcome>;
  /** Closes the connections; sends in flight and later ones reject with {@link ShadowClientClosedError}. */
  close(): void;
}

/**
 * The shadow client was closed, before or while the request was sent: the
 * server is shutting down. Maps to UNAVAILABLE; the request stays buffered.
 */
export class ShadowClientClosedError extends UnavailableError {
  constructor() {
    super("the shadow client is closed: the server is shutting down");
  }
}

/** Options for {@link createHttpShadowClient}. */
export interface HttpShadowClientOptions {
  /** Connections kept per shadow origin. Default 64. */
  readonly maxSocketsPerOrigin?: number;
  /** Largest response body read; longer ones are cut (and compare as text). Default 1 MiB. */
  readonly maxResponseBytes?: number;
  /** PEM certificates HTTPS shadows must chain to; default Node's bundled root CAs. */
  readonly ca?: string | Buffer;
}

/**
 * A shadow client over undici, with one keep-alive connection pool per
 * shadow origin (reused across dispatches). undici rather than node:http
 * because it costs under half the CPU per request (26–30 µs against 53–78
 * here, which is what bounds Dispatch on a shared machine), and rather than
 * fetch because a shadow request must carry its own Host header (Envoy's
 * `-shadow` suffix), which fetch does not let a caller set.
 *
 * Outcomes: a response of any status (`response`, with the body parsed as
 * JSON, or as its text when it is not JSON); no complete answer within the
 * request's timeout (`timeout`: the request is aborted; undici's own
 * connect, headers and body timeouts are off, so this is the only one;
 * a connection still being set up goes on, for the next request); a socket or DNS
 * failure (`connection`, with the error code, e.g. `ECONNREFUSED`, or
 * undici's `UND_ERR_SOCKET` for a connection closed mid-request), or a
 * request that cannot be sent as HTTP (`connection`, `ERR_INVALID_CHAR` for
 * a header value outside visible latin-1).
 *
 * TLS: the server name (SNI, and the name the certificate must carry) is
 * the endpoint's host, not the `-shadow` Host header, as Envoy's mirror
 * cluster does.
 */
export function createHttpShadowClient(options: HttpShadowClientOptions = {}): ShadowClient {
  const connections = options.maxSocketsPerOrigin ?? 64;
  const maxResponseBytes = options.maxResponseBytes ?? 1024 * 1024;
  const pools = new Map<string, Pool>();
  let closed = false;
  const poolOf = (origin: string): Pool => {
    let pool = pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections,
        headersTimeout: 0,
        bodyTimeout: 0,
        connectTimeout: maxConnectTimeoutMs,
        ...(options.ca !== undefined ? { connect: { ca: options.ca } } : {}),
      });
      pools.set(origin, pool);
    }
    return pool;
  };
  return {
    async send(request) {
      const started = performance.now();
      const elapsed = (): number => performance.now() - started;
      if (closed) throw new ShadowClientClosedError();
      if (!validHeaderValues(request.headers)) return { kind: "connection", latencyMs: elapsed(), error: "ERR_INVALID_CHAR" };
      const url = new URL(request.url);
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), request.timeoutMs);
      try {
        const response = await poolOf(url.origin).request({
          path: `${url.pathname}${url.search}`,
          method: request.method as "GET",
          headers: request.headers,
          body: request.body === undefined || typeof request.body === "string" ? request.body : Buffer.from(request.body),
          signal: abort.signal,
          ...(url.protocol === "https:" && isIP(url.hostname) === 0 ? { servername: url.hostname } : {}),
        });
        const text = await readText(response.body, maxResponseBytes);
        return { kind: "response", status: response.statusCode, latencyMs: elapsed(), ...(text === "" ? {} : { body: parseBody(text) }) };
      } catch (error) {
        if (closed) throw new ShadowClientClosedError();
        if (abort.signal.aborted) return { kind: "timeout", latencyMs: elapsed() };
        const code = (error as NodeJS.ErrnoException).code;
        return { kind: "connection", latencyMs: elapsed(), error: code ?? (error as Error).message };
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      closed = true;
      for (const pool of pools.values()) void pool.destroy();
      pools.clear();
    },
  };
}

/** undici's connect timeout, set past the longest request timeout so the request's own timeout decides. */
const maxConnectTimeoutMs = mirrorInputLimits.maxTimeoutMs + 1000;

/**
 * Header values HTTP/1.1 can carry: visible latin-1, spaces and tabs (as
 * node:http checks; undici would send other characters as UTF-8 bytes).
 */
function validHeaderValues(headers: Readonly<Record<string, string>>): boolean {
  for (const name in headers) if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(headers[name]!)) return false;
  return true;
}

/** A response body as text, at most `maxBytes` of it; the rest is read and dropped, so the connection stays reusable. */
async function readText(body: AsyncIterable<Buffer>, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size >= maxBytes) continue;
    chunks.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(chunks).subarray(0, maxBytes).toString("utf8");
}

/** A response body as JSON, or as its text when it is not JSON. */
function parseBody(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}
