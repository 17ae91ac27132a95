import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { nextWithin, within } from "../../fixtures/streams.js";

describe("grpc.health.v1.Health", () => {
  let server: TestControlPlane;
  beforeEach(async () => {
    server = await startTestControlPlane();
  });
  afterEach(async () => {
    await server.stop();
  });

  it("reports the whole server SERVING under the empty name", async () => {
    const res = await server.grpc(Health).check({ service: "" }, { timeoutMs: 5000 });
    expect(res.status).toBe(Status.SERVING);
  });

  it("reports each served service, and NOT_FOUND for one it does not serve", async () => {
    const health = server.grpc(Health);
    expect((await health.check({ service: "grpc.health.v1.Health" }, { timeoutMs: 5000 })).status).toBe(Status.SERVING);
    const error = await health.check({ service: "no.such.Service" }, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).toContain("no.such.Service");
  });

  it("lists every service with its status", async () => {
    const { statuses } = await server.grpc(Health).list({}, { timeoutMs: 5000 });
    expect(Object.keys(statuses)).toEqual(expect.arrayContaining(["", "grpc.health.v1.Health"]));
    for (const response of Object.values(statuses)) expect(response.status).toBe(Status.SERVING);
  });

  it("watch sends the current status, then every change", async () => {
    const stream = server.grpc(Health).watch({ service: "grpc.health.v1.Health" }, { timeoutMs: 10_000 })[Symbol.asyncIterator]();
    expect((await nextWithin(stream)).value?.status).toBe(Status.SERVING);
    server.controlPlane.serving.set("grpc.health.v1.Health", "not_serving");
    expect((await nextWithin(stream)).value?.status).toBe(Status.NOT_SERVING);
    server.controlPlane.serving.set("grpc.health.v1.Health", "serving");
    expect((await nextWithin(stream)).value?.status).toBe(Status.SERVING);
    await stream.return?.();
  });

  it("watch of an unknown service answers SERVICE_UNKNOWN and keeps the stream open until it appears", async () => {
    const stream = server.grpc(Health).watch({ service: "later.Service" }, { timeoutMs: 10_000 })[Symbol.asyncIterator]();
    expect((await nextWithin(stream)).value?.status).toBe(Status.SERVICE_UNKNOWN);
    server.controlPlane.serving.set("later.Service", "serving");
    expect((await nextWithin(stream)).value?.status).toBe(Status.SERVING);
    await stream.return?.();
  });

  it("on shutdown a watcher sees NOT_SERVING, then the stream ends with UNAVAILABLE", async () => {
    const stream = server.grpc(Health).watch({ service: "" }, { timeoutMs: 10_000 })[Symbol.asyncIterator]();
    expect((await nextWithin(stream)).value?.status).toBe(Status.SERVING);
    const stopping = server.controlPlane.shutdown();
    expect((await nextWithin(stream)).value?.status).toBe(Status.NOT_SERVING);
    const end = await nextWithin(stream).catch((e: unknown) => e);
    expect(end).toBeInstanceOf(ConnectError);
    expect((end as ConnectError).code).toBe(Code.Unavailable);
    expect((end as ConnectError).rawMessage).toBe("server shutting down");
    await within(stopping, 5000, "shutdown");
  });
});
