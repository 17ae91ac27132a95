import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { CaptureStreamRequestSchema, MirrorMode, MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { rawCall } from "../../fixtures/raw-calls.js";

/** Bytes no message decodes: a length-delimited field 1 whose length runs past the end. */
const garbage = Uint8Array.of(0x0a, 0xff);
const registerPath = `/${RegistryService.typeName}/Register`;
const captureStreamPath = `/${MirrorService.typeName}/CaptureStream`;
const healthWatchPath = `/${Health.typeName}/Watch`;
const reflectionPath = `/${ServerReflection.typeName}/ServerReflectionInfo`;
const opts = { timeoutMs: 5000 };
const registerAnswer = "request is not a valid latticeforge.registry.v1.RegisterRequest: premature EOF";

/** One gRPC-Web frame: flags, big-endian length, payload. */
function grpcWebFrame(flags: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + payload.byteLength);
  frame[0] = flags;
  new DataView(frame.buffer).setUint32(1, payload.byteLength);
  frame.set(payload, 5);
  return frame;
}

/** The trailers of a gRPC-Web response body (its frame with the 0x80 flag), as a map. */
function grpcWebTrailers(body: Uint8Array): Map<string, string> {
  for (let at = 0; at + 5 <= body.byteLength; ) {
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    if ((body[at]! & 0x80) !== 0) {
      const text = new TextDecoder().decode(body.subarray(at + 5, at + 5 + length));
      return new Map(
        text
          .split("\r\n")
          .filter((line) => line.length > 0)
          .map((line) => {
            const colon = line.indexOf(":");
            return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as [string, string];
          }),
      );
    }
    at += 5 + length;
  }
  throw new Error("no trailer frame in the gRPC-Web response");
}

describe("request bytes that are not the request message", () => {
  let server: TestControlPlane;
  let httpAddress: string;
  beforeAll(async () => {
    server = await startTestControlPlane();
    httpAddress = new URL(server.httpBaseUrl).host;
  });
  afterAll(async () => {
    await server.stop();
  });

  /** grpc_server_handled_total of `path` (`/service/Method`) with `code` (e.g. InvalidArgument), 0 when absent. */
  async function handled(path: string, code: string): Promise<number> {
    const [, service, method] = path.split("/");
    const metrics = await (await fetch(`${server.httpBaseUrl}/metrics`)).text();
    const series = `grpc_server_handled_total\\{[^}]*grpc_service="${service}",grpc_method="${method}",grpc_code="${code}"\\} (\\d+)`;
    const match = new RegExp(series).exec(metrics);
    return match === null ? 0 : Number(match[1]);
  }

  /** POSTs `body` to Register on the HTTP port as `contentType` (plus `headers`). */
  function postRegister(contentType: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${server.httpBaseUrl}${registerPath}`, { method: "POST", headers: { "content-type": contentType, ...headers }, body });
  }

  it("answer a unary call INVALID_ARGUMENT naming `request` over grpc-js, and count it", async () => {
    const before = await handled(registerPath, "InvalidArgument");
    const error = await rawCall(server.grpcAddress, registerPath, "unary", [garbage]);
    expect(error?.code).toBe(3);
    expect(error?.details).toBe(registerAnswer);
    expect(await handled(registerPath, "InvalidArgument")).toBe(before + 1);
  });

  it("answer a unary call the same over Connect, gRPC-Web and gRPC on the HTTP port, and count each", async () => {
    const before = await handled(registerPath, "InvalidArgument");
    const connect = await postRegister("application/proto", garbage);
    expect(connect.status).toBe(400);
    expect(await connect.json()).toEqual({ code: "invalid_argument", message: registerAnswer });

    const grpcWeb = await postRegister("application/grpc-web+proto", grpcWebFrame(0, garbage), { "x-grpc-web": "1" });
    expect(grpcWeb.status).toBe(200);
    const trailers = grpcWebTrailers(new Uint8Array(await grpcWeb.arrayBuffer()));
    expect(trailers.get("grpc-status")).toBe("3");
    expect(decodeURIComponent(trailers.get("grpc-message") ?? "")).toBe(registerAnswer);

    const grpc = await rawCall(httpAddress, registerPath, "unary", [garbage]);
    expect(grpc?.code).toBe(3);
    // connect-node percent-encodes grpc-message more than the spec asks, and grpc-js does not decode it.
    expect(decodeURIComponent(grpc?.details ?? "")).toBe(registerAnswer);
    expect(await handled(registerPath, "InvalidArgument")).toBe(before + 3);
  });

  it("count a Connect JSON body that does not parse, answered by connect-node's JSON parser", async () => {
    const before = await handled(registerPath, "InvalidArgument");
    const answer = await postRegister("application/json", "{not json");
    expect(answer.status).toBe(400);
    expect(((await answer.json()) as { code: string }).code).toBe("invalid_argument");
    expect(await handled(registerPath, "InvalidArgument")).toBe(before + 1);
  });

  it("fail a client stream INVALID_ARGUMENT naming `request` on both ports, keeping the captures before it", async () => {
    await server.grpc(MirrorService).addMirror({ mirror: { mirrorId: "orders-shadow", sourceService: "orders", shadowEndpoint: "http://127.0.0.1:9", mode: MirrorMode.FULL, timeoutMs: 1000 } }, opts);
    const valid = (requestId: string): Uint8Array =>
      toBinary(CaptureStreamRequestSchema, create(CaptureStreamRequestSchema, { capture: { requestId, sourceService: "orders", intent: "create_order" } }));
    for (const [address, requestId] of [
      [server.grpcAddress, "over-grpc"],
      [httpAddress, "over-http"],
    ] as const) {
      const error = await rawCall(address, captureStreamPath, "client_stream", [valid(requestId), garbage]);
      expect(error?.code).toBe(3);
      expect(decodeURIComponent(error?.details ?? "")).toBe("request is not a valid latticeforge.mirror.v1.CaptureStreamRequest: premature EOF");
    }
    const { requests } = await server.grpc(MirrorService).drain({ mirrorId: "orders-shadow", limit: 10 }, opts);
    expect(requests.map((request) => request.requestId)).toEqual(["over-grpc", "over-http"]);
    expect(await handled(captureStreamPath, "InvalidArgument")).toBe(2);
  });

  it("fail a server stream and a bidi stream INVALID_ARGUMENT naming `request` on both ports, and count each", async () => {
    for (const address of [server.grpcAddress, httpAddress]) {
      const watch = await rawCall(address, healthWatchPath, "server_stream", [garbage]);
      expect(watch?.code).toBe(3);
      expect(decodeURIComponent(watch?.details ?? "")).toBe("request is not a valid grpc.health.v1.HealthCheckRequest: premature EOF");
      const reflection = await rawCall(address, reflectionPath, "bidi", [garbage]);
      expect(reflection?.code).toBe(3);
      expect(decodeURIComponent(reflection?.details ?? "")).toBe(
        "request is not a valid grpc.reflection.v1.ServerReflectionRequest: premature EOF",
      );
    }
    expect(await handled(healthWatchPath, "InvalidArgument")).toBe(2);
    expect(await handled(reflectionPath, "InvalidArgument")).toBe(2);
  });

  it("leave the server serving well-formed calls", async () => {
    const resolved = await server.grpc(RegistryService).resolve({ serviceName: "checkout" }, opts);
    expect(resolved.instances).toEqual([]);
  });
});
