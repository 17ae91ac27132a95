/**
 * The shadow process (forked by `startShadowHost`, never imported): a
 * `node:http` server on 127.0.0.1:0 that reads each request's body and
 * answers 200 with the JSON body given in argv[2]. Connections are kept
 * alive between requests and between Dispatch calls (a minute idle, well
 * beyond any pause of the bench), so the dispatcher's keep-alive agent
 * reuses them as it would against a real shadow.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { nextMessage, runChild, sendToParent } from "./ipc.js";
import type { ShadowMessage } from "./shadow-host.js";

/** The parent bounds every run; this only ends a shadow the parent forgot. */
const parentTimeoutMs = 3_600_000;
const keepAliveMs = 60_000;

runChild(async () => {
  const body = Buffer.from(process.argv[2] ?? "{}");
  let served = 0;
  const server = createServer({ keepAlive: true, keepAliveTimeout: keepAliveMs }, (request, response) => {
    request.on("data", () => undefined);
    request.on("end", () => {
      served++;
      response.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      response.end(body);
    });
  });
  server.keepAliveTimeout = keepAliveMs;
  server.headersTimeout = keepAliveMs + 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  process.on("message", (message: ShadowMessage) => {
    if (message.type === "stats") void sendToParent({ type: "shadow-stats", served, cpu: process.cpuUsage() } satisfies ShadowMessage);
  });
  const stopped = nextMessage<ShadowMessage, "stop">(process, "stop", parentTimeoutMs, "waiting for stop");
  await sendToParent({ type: "ready", port: (server.address() as AddressInfo).port } satisfies ShadowMessage);
  await stopped;
  server.closeAllConnections();
  server.close();
  process.exit(0);
});
