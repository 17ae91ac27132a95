import http from "node:http";
import https from "node:https";
import type { JsonValue } from "../core/mirror/model.js";
import type { ShadowOutcome } from "../core/mirror/outcome.js";
import type { ShadowRequest } from "../core/mirror/shadow-request.js";

/** Sends shadow requests; every failure is an outcome, never an exception. */
export interface ShadowClient {
  send(request: ShadowRequest): Promise<ShadowOutcome>;
  /** Closes idle keep-alive connections. */
  close(): void;
}

/** Options for {@link createHttpShadowClient}. */
export interface HttpShadowClientOptions {
  /** Connections kept per shadow origin. Default 64. */
  readonly maxSocketsPerOrigin?: number;
  /** Largest response body read; longer ones are cut (and compare as text). Default 1 MiB. */
  readonly maxResponseBytes?: number;
}

/**
 * A shadow client over node:http(s) with keep-alive agents (connections
 * are reused across dispatches). node:http rather than fetch because a
 * shadow request must carry its own Host header (Envoy's `-shadow` suffix),
 * which fetch does not let a caller set.
 *
 * Outcomes: a response of any status (`response`, with the body parsed as
 * JSON, or as its text when it is not JSON); no answer within the request's
 * timeout (`timeout`: the request is destroyed); a socket or DNS failure,
 * or a request node:http refuses to send (`connection`, with the error code).
 */
export function createHttpShadowClient(options: HttpShadowClientOptions = {}): ShadowClient {
  const maxSockets = options.maxSocketsPerOrigin ?? 64;
  const maxResponseBytes = options.maxResponseBytes ?? 1024 * 1024;
  const agents = {
    "http:": new http.Agent({ keepAlive: true, maxSockets }),
    "https:": new https.Agent({ keepAlive: true, maxSockets }),
  };
  return {
    send(request) {
      const started = performance.now();
      const elapsed = (): number => performance.now() - started;
      return new Promise<ShadowOutcome>((resolve) => {
        let settled = false;
        let timer: NodeJS.Timeout | undefined;
        const settle = (outcome: ShadowOutcome): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(outcome);
        };
        const url = new URL(request.url);
        const agent = url.protocol === "https:" ? agents["https:"] : agents["http:"];
        const send = url.protocol === "https:" ? https.request : http.request;
        const body = request.body;
        let outgoing: http.ClientRequest;
        try {
          outgoing = send(url, { method: request.method, headers: request.headers, agent }, onResponse);
        } catch (error) {
          // node:http refuses some requests synchronously, e.g. a header value
          // outside latin-1 (ERR_INVALID_CHAR): an outcome, like any failure.
          const code = (error as NodeJS.ErrnoException).code;
          settle({ kind: "connection", latencyMs: elapsed(), error: code ?? (error as Error).message });
          return;
        }
        function onResponse(response: http.IncomingMessage): void {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on("data", (chunk: Buffer) => {
            if (size >= maxResponseBytes) return;
            chunks.push(chunk);
            size += chunk.length;
          });
          response.on("end", () => {
            const text = Buffer.concat(chunks).subarray(0, maxResponseBytes).toString("utf8");
            settle({
              kind: "response",
              status: response.statusCode ?? 0,
              latencyMs: elapsed(),
              ...(text === "" ? {} : { body: parseBody(text) }),
            });
          });
          response.on("error", (error: NodeJS.ErrnoException) =>
            settle({ kind: "connection", latencyMs: elapsed(), error: error.code ?? error.message }),
          );
        }
        timer = setTimeout(() => {
          settle({ kind: "timeout", latencyMs: elapsed() });
          outgoing.destroy();
        }, request.timeoutMs);
        outgoing.on("error", (error: NodeJS.ErrnoException) =>
          settle({ kind: "connection", latencyMs: elapsed(), error: error.code ?? error.message }),
        );
        outgoing.end(body === undefined ? undefined : typeof body === "string" ? body : Buffer.from(body));
      });
    },
    close() {
      agents["http:"].destroy();
      agents["https:"].destroy();
    },
  };
}

/** A response body as JSON, or as its text when it is not JSON. */
function parseBody(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}
