import type { Registry } from "prom-client";
import type { HttpRoute } from "./http-server.js";

/** What the probe routes report on. */
export interface ProbeOptions {
  /** The Prometheus registry served at /metrics. */
  readonly metrics: Registry;
  /** Why the server is not ready, or undefined when it is. */
  readonly ready: () => string | undefined;
}

/**
 * The plain HTTP routes of the HTTP port: `/healthz` (liveness: the process
 * answers), `/readyz` (readiness: the database answers and no shutdown is
 * under way) and `/metrics` (Prometheus text).
 */
export function createProbeRoutes(options: ProbeOptions): ReadonlyMap<string, HttpRoute> {
  return new Map<string, HttpRoute>([
    [
      "/healthz",
      (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok\n");
      },
    ],
    [
      "/readyz",
      (_req, res) => {
        const reason = options.ready();
        res.writeHead(reason === undefined ? 200 : 503, { "content-type": "text/plain" });
        res.end(reason === undefined ? "ready\n" : `not ready: ${reason}\n`);
      },
    ],
    [
      "/metrics",
      async (_req, res) => {
        const body = await options.metrics.metrics();
        res.writeHead(200, { "content-type": options.metrics.contentType });
        res.end(body);
      },
    ],
  ]);
}
