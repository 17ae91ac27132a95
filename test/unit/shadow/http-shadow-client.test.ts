import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildShadowRequest, type ShadowRequest } from "../../../server/core/mirror/shadow-request.js";
import { createHttpShadowClient, ShadowClientClosedError, type ShadowClient } from "../../../server/shadow/http-shadow-client.js";
import { createTestCertificates } from "../../fixtures/certificates.js";
import { closedPort, startShadow, type TestShadow } from "../../fixtures/mirror.js";
import { within } from "../../fixtures/streams.js";
import { mirroredRequest } from "../mirror/builders.js";

let shadow: TestShadow;
let client: ShadowClient;

/** A POST of `{"a":1}` to `path` on the test shadow. */
function post(path = "/orders", overrides: Partial<ShadowRequest> = {}): ShadowRequest {
  return {
    url: `${shadow.url}${path}`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ a: 1 }),
    timeoutMs: 2000,
    ...overrides,
  };
}

describe("createHttpShadowClient", () => {
  beforeEach(async () => {
    shadow = await startShadow();
    client = createHttpShadowClient();
  });
  afterEach(async () => {
    client.close();
    await shadow.close();
  });

  it("answers a 2xx JSON response with its status, parsed body and latency", async () => {
    shadow.handle(() => ({ status: 201, json: { id: 7, items: [{ price: 1.5 }] } }));
    const outcome = await client.send(post());
    expect(outcome).toEqual({ kind: "response", status: 201, latencyMs: expect.any(Number), body: { id: 7, items: [{ price: 1.5 }] } });
    expect(outcome.latencyMs).toBeGreaterThanOrEqual(0);
    expect(shadow.hits[0]).toMatchObject({ method: "POST", url: "/orders", text: '{"a":1}' });
    expect(shadow.hits[0]!.headers["content-type"]).toBe("application/json");
  });

  it("passes a body that is not JSON as its text", async () => {
    shadow.handle(() => ({ text: "plain <b>ok</b>", headers: { "content-type": "text/html" } }));
    expect(await client.send(post())).toMatchObject({ kind: "response", status: 200, body: "plain <b>ok</b>" });
  });

  it("leaves the body out when the answer has none", async () => {
    shadow.handle(() => ({ status: 204 }));
    const outcome = await client.send(post());
    expect(outcome).toEqual({ kind: "response", status: 204, latencyMs: expect.any(Number) });
  });

  it.each([400, 404, 500, 503])("reports HTTP %i as a response outcome, not an error", async (status) => {
    shadow.handle(() => ({ status, json: { error: "nope" } }));
    expect(await client.send(post())).toMatchObject({ kind: "response", status, body: { error: "nope" } });
  });

  it("reports a shadow that never answers as a timeout after timeoutMs and drops the request", async () => {
    shadow.handle(() => "hang");
    const started = performance.now();
    const outcome = await within(client.send(post("/hang", { timeoutMs: 150 })), 3000, "timeout outcome");
    const took = performance.now() - started;
    expect(outcome.kind).toBe("timeout");
    expect(outcome.latencyMs).toBeGreaterThanOrEqual(149);
    expect(took).toBeLessThan(1500);
    // The hung request is not left holding a pooled connection: the next one gets an answer.
    shadow.handle(() => ({ json: { after: true } }));
    expect(await client.send(post())).toMatchObject({ kind: "response", body: { after: true } });
  });

  it("reports a refused connection with ECONNREFUSED", async () => {
    const port = await closedPort();
    const outcome = await client.send(post("/", { url: `http://127.0.0.1:${port}/orders` }));
    expect(outcome).toEqual({ kind: "connection", latencyMs: expect.any(Number), error: "ECONNREFUSED" });
  });

  it("reports a connection reset mid-request as a connection outcome", async () => {
    shadow.handle(() => "destroy");
    const outcome = await client.send(post());
    expect(outcome.kind).toBe("connection");
    expect(outcome.kind === "connection" && outcome.error).toMatch(/^(UND_ERR_SOCKET|ECONNRESET)$/);
  });

  it("sends the shadow Host with the -shadow suffix, the marker header, the traceparent and no hop-by-hop headers", async () => {
    const request = buildShadowRequest(
      mirroredRequest({
        method: "PUT",
        path: "/orders/7?x=1",
        payload: { qty: 3 },
        headers: {
          host: "orders.internal:8443",
          traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          connection: "keep-alive, x-hop",
          "x-hop": "1",
          "x-tenant": "t1",
        },
      }),
      { mirrorId: "orders-shadow", endpoint: `${shadow.url}/base/`, timeoutMs: 2000 },
    );
    await client.send(request);
    const [hit] = shadow.hits;
    expect(hit).toMatchObject({ method: "PUT", url: "/base/orders/7?x=1", text: '{"qty":3}' });
    expect(hit!.headers.host).toBe("orders.internal-shadow:8443");
    expect(hit!.headers["x-latticeforge-shadow"]).toBe("orders-shadow");
    expect(hit!.headers.traceparent).toBe("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    expect(hit!.headers["x-tenant"]).toBe("t1");
    expect(hit!.headers["x-hop"]).toBeUndefined();
    expect(hit!.headers["content-type"]).toBe("application/json");
  });

  it("uses the endpoint's host when the capture had none, and sends a raw body byte for byte", async () => {
    const rawBody = new Uint8Array([0, 1, 2, 0xfe, 0xff]);
    const request = buildShadowRequest(mirroredRequest({ rawBody, headers: { "content-type": "application/octet-stream" } }), {
      mirrorId: "m",
      endpoint: shadow.url,
      timeoutMs: 2000,
    });
    await client.send(request);
    expect(shadow.hits[0]!.headers.host).toBe(`127.0.0.1:${shadow.port}`);
    expect([...shadow.hits[0]!.body]).toEqual([0, 1, 2, 0xfe, 0xff]);
  });

  it("sends a GET without a body", async () => {
    const request = buildShadowRequest(mirroredRequest({ method: "GET", path: "/orders/1" }), {
      mirrorId: "m",
      endpoint: shadow.url,
      timeoutMs: 2000,
    });
    await client.send(request);
    expect(shadow.hits[0]).toMatchObject({ method: "GET", url: "/orders/1", text: "" });
    expect(shadow.hits[0]!.headers["content-length"]).toBeUndefined();
    expect(shadow.hits[0]!.headers["transfer-encoding"]).toBeUndefined();
  });

  it("reuses keep-alive connections for sequential requests instead of opening one per request", async () => {
    for (let i = 0; i < 10; i++) expect(await client.send(post())).toMatchObject({ kind: "response", status: 200 });
    // undici's pool may hand the next request to a second connection while
    // the first finishes its response; both are then reused.
    expect(shadow.connections).toBeLessThanOrEqual(2);
    expect(new Set(shadow.hits.map((hit) => hit.remotePort)).size).toBe(shadow.connections);
  });

  it("cuts a response longer than maxResponseBytes, which then compares as text", async () => {
    const small = createHttpShadowClient({ maxResponseBytes: 10 });
    try {
      shadow.handle(() => ({ json: { long: "x".repeat(100) } }));
      const outcome = await small.send(post());
      expect(outcome).toMatchObject({ kind: "response", status: 200, body: '{"long":"x' });
    } finally {
      small.close();
    }
  });

  it("turns a header value HTTP cannot carry into an outcome instead of sending or throwing", async () => {
    const outcome = await client.send(post("/", { headers: { "x-note": "price in \u20ac" } }));
    expect(outcome).toEqual({ kind: "connection", latencyMs: expect.any(Number), error: "ERR_INVALID_CHAR" });
    expect(shadow.hits).toHaveLength(0);
  });

  it("closes idle keep-alive connections on close", async () => {
    await client.send(post());
    expect(shadow.connections).toBe(1);
    client.close();
    const fresh = createHttpShadowClient();
    try {
      await fresh.send(post());
      expect(shadow.connections).toBe(2);
      expect(shadow.hits[1]!.remotePort).not.toBe(shadow.hits[0]!.remotePort);
    } finally {
      fresh.close();
    }
  });
});

describe("createHttpShadowClient, beyond a plain answer", () => {
  /** Starts `server` on 127.0.0.1:0 and returns its port; closes it after the test. */
  const servers: (http.Server | https.Server)[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
  async function listen(server: http.Server | https.Server): Promise<number> {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  }

  it("times out a shadow that sends its headers and then stalls the body", async () => {
    const port = await listen(
      http.createServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"partial":');
      }),
    );
    const client = createHttpShadowClient();
    try {
      const request: ShadowRequest = { url: `http://127.0.0.1:${port}/slow`, method: "GET", headers: {}, timeoutMs: 200 };
      const outcome = await within(client.send(request), 3000, "timeout outcome");
      expect(outcome.kind).toBe("timeout");
      expect(outcome.latencyMs).toBeGreaterThanOrEqual(199);
    } finally {
      client.close();
    }
  });

  it("names the endpoint's host in TLS (SNI and certificate check), not the -shadow Host header", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lf-shadow-tls-"));
    try {
      const certs = createTestCertificates(dir);
      const seen: { servername: string | false | null; host: string | undefined }[] = [];
      const port = await listen(
        https.createServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (req, res) => {
          seen.push({ servername: (req.socket as TLSSocket).servername, host: req.headers.host });
          res.end("{}");
        }),
      );
      const client = createHttpShadowClient({ ca: readFileSync(certs.ca) });
      try {
        const request = buildShadowRequest(mirroredRequest({ headers: { host: "orders.internal" } }), {
          mirrorId: "m",
          endpoint: `https://localhost:${port}`,
          timeoutMs: 2000,
        });
        expect(await client.send(request)).toMatchObject({ kind: "response", status: 200 });
        expect(seen).toEqual([{ servername: "localhost", host: "orders.internal-shadow" }]);
      } finally {
        client.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses every request after close with ShadowClientClosedError, without a socket", async () => {
    let connections = 0;
    const server = http.createServer((_req, res) => res.end("{}"));
    server.on("connection", () => connections++);
    const port = await listen(server);
    const client = createHttpShadowClient();
    client.close();
    const sent = client.send({ url: `http://127.0.0.1:${port}/`, method: "GET", headers: {}, timeoutMs: 1000 });
    await expect(sent).rejects.toBeInstanceOf(ShadowClientClosedError);
    expect(connections).toBe(0);
  });

  it("rejects a request in flight when the client closes, rather than reporting a shadow failure", async () => {
    let arrived: (() => void) | undefined;
    const port = await listen(
      http.createServer(() => {
        arrived?.(); // never answers
      }),
    );
    const client = createHttpShadowClient();
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    const sent = client.send({ url: `http://127.0.0.1:${port}/hang`, method: "GET", headers: {}, timeoutMs: 5000 });
    await within(reached, 3000, "the request to reach the shadow");
    client.close();
    await expect(within(sent, 3000, "the send to end")).rejects.toBeInstanceOf(ShadowClientClosedError);
  });
});
