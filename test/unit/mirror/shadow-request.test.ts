import { describe, expect, it } from "vitest";
import {
  buildShadowRequest,
  isShadowTraffic,
  shadowHost,
  shadowUrl,
  type ShadowTarget,
} from "../../../server/core/mirror/shadow-request.js";
import { mirroredRequest } from "./builders.js";

const target: ShadowTarget = { mirrorId: "orders-shadow", endpoint: "http://127.0.0.1:9090", timeoutMs: 250 };

describe("buildShadowRequest", () => {
  it("sends the payload as JSON with the marker, the -shadow host and the trace context", () => {
    const request = mirroredRequest({
      headers: {
        host: "orders.internal:8080",
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        tracestate: "vendor=1",
        "content-type": "text/plain",
        "x-custom": "1",
      },
    });
    expect(buildShadowRequest(request, target)).toEqual({
      url: "http://127.0.0.1:9090/orders",
      method: "POST",
      headers: {
        host: "orders.internal-shadow:8080",
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        tracestate: "vendor=1",
        "content-type": "application/json",
        "x-custom": "1",
        "x-latticeforge-shadow": "orders-shadow",
      },
      body: '{"sku":"A-1","qty":2}',
      timeoutMs: 250,
    });
  });

  it("drops hop-by-hop headers, those named in Connection, pseudo-headers and content-length", () => {
    const request = mirroredRequest({
      headers: {
        connection: "keep-alive, x-hop",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        te: "trailers",
        upgrade: "h2c",
        "content-length": "17",
        "x-hop": "1",
        ":authority": "orders:80",
        ":path": "/orders",
        accept: "application/json",
      },
    });
    expect(buildShadowRequest(request, target).headers).toEqual({
      host: "orders-shadow:80",
      accept: "application/json",
      "content-type": "application/json",
      "x-latticeforge-shadow": "orders-shadow",
    });
  });

  it("sends the raw body instead of the payload, keeping the original content type", () => {
    const rawBody = new Uint8Array([0x3c, 0x61, 0x2f, 0x3e]);
    const built = buildShadowRequest(mirroredRequest({ rawBody, headers: { "content-type": "application/xml" } }), target);
    expect(built.body).toBe(rawBody);
    expect(built.headers["content-type"]).toBe("application/xml");
  });

  it.each(["GET", "HEAD"])("sends no body with %s", (method) => {
    const built = buildShadowRequest(mirroredRequest({ method, rawBody: new Uint8Array([1]) }), target);
    expect("body" in built).toBe(false);
    expect(built.method).toBe(method);
  });

  it("sets no host when the capture had none, leaving the endpoint's", () => {
    expect(buildShadowRequest(mirroredRequest({ headers: {} }), target).headers).not.toHaveProperty("host");
  });

  it("keeps redacted values as stored", () => {
    const built = buildShadowRequest(mirroredRequest({ headers: { authorization: "[REDACTED]" } }), target);
    expect(built.headers["authorization"]).toBe("[REDACTED]");
  });
});

describe("shadow conventions", () => {
  it.each<[string, string]>([
    ["orders.internal", "orders.internal-shadow"],
    ["orders.internal:8080", "orders.internal-shadow:8080"],
    ["10.0.0.1:80", "10.0.0.1-shadow:80"],
    ["[::1]:8080", "[::1]-shadow:8080"],
    ["[::1]", "[::1]-shadow"],
  ])("the shadow host of %s is %s", (host, expected) => {
    expect(shadowHost(host)).toBe(expected);
  });

  it.each<[string, string, string]>([
    ["http://s:1", "/a?b=1", "http://s:1/a?b=1"],
    ["http://s:1/", "/a", "http://s:1/a"],
    ["http://s:1/api", "/a", "http://s:1/api/a"],
    ["http://s:1/api/", "/", "http://s:1/api/"],
  ])("joins %s and %s", (endpoint, path, url) => {
    expect(shadowUrl(endpoint, path)).toBe(url);
  });

  it("recognises mirrored traffic by its marker", () => {
    expect(isShadowTraffic({ "x-latticeforge-shadow": "m" })).toBe(true);
    expect(isShadowTraffic({ host: "orders" })).toBe(false);
  });
});
