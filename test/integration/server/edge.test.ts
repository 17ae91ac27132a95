import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
  HealthCheckResponseSchema,
} from "../../../gen/grpc/health/v1/health_pb.js";
import type { ServiceRegistration } from "../../../server/rpc/service-registration.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";

/**
 * Wraps the real Health service: Check of "explode" is a handler bug, Check of
 * "slow" waits for its context signal and records why it aborted.
 */
function withFaults(aborts: unknown[]) {
  return (registrations: ServiceRegistration[]): ServiceRegistration[] =>
    registrations.map((registration) => {
      if (registration.service !== Health) return registration;
      const real = registration.impl as unknown as Record<string, (...args: never[]) => unknown>;
      const impl = {
        ...real,
        check: async (request: { service: string }, ctx: { signal: AbortSignal }) => {
          if (request.service === "explode") throw new TypeError("Cannot read properties of undefined (reading 'secret')");
          if (request.service === "slow") {
            await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
            aborts.push(ctx.signal.reason);
            return { status: Status.UNKNOWN };
          }
          return (real.check as (...args: unknown[]) => unknown)(request, ctx);
        },
      };
      return { service: registration.service, impl } as unknown as ServiceRegistration;
    });
}

describe("the edge: errors, limits, deadlines and metrics on both ports", () => {
  let server: TestControlPlane;
  const aborts: unknown[] = [];
  beforeAll(async () => {
    server = await startTestControlPlane({ adjustServices: withFaults(aborts), flags: { "max-message-bytes": "65536" } });
  });
  afterAll(async () => {
    await server.stop();
  });

  it("answers the same RPC identically over gRPC, Connect JSON, Connect binary, gRPC-Web and gRPC on the HTTP port", async () => {
    const expected = create(HealthCheckResponseSchema, { status: Status.SERVING });
    const answers = await Promise.all([
      server.grpc(Health).check({ service: "" }, { timeoutMs: 5000 }),
      server.http(Health, { protocol: "connect", useJson: true }).check({ service: "" }, { timeoutMs: 5000 }),
      server.http(Health, { protocol: "connect" }).check({ service: "" }, { timeoutMs: 5000 }),
      server.http(Health, { protocol: "grpc-web" }).check({ service: "" }, { timeoutMs: 5000 }),
      server.http(Health, { protocol: "grpc-web", useJson: true, httpVersion: "2" }).check({ service: "" }, { timeoutMs: 5000 }),
      server.http(Health, { protocol: "grpc" }).check({ service: "" }, { timeoutMs: 5000 }),
    ]);
    for (const answer of answers) {
      expect(toBinary(HealthCheckResponseSchema, answer)).toEqual(toBinary(HealthCheckResponseSchema, expected));
    }
  });

  it("serves plain curl-style JSON over HTTP/1.1", async () => {
    const res = await fetch(`${server.httpBaseUrl}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(toJson(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: Status.SERVING })));
  });

  it.each(["grpc", "connect", "grpc-web"] as const)("maps the same domain error to the same code over %s", async (protocol) => {
    const client = protocol === "grpc" ? server.grpc(Health) : server.http(Health, { protocol });
    const error = await client.check({ service: "missing.Service" }, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).toBe('service "missing.Service" is not served here');
  });

  it.each(["grpc", "connect"] as const)("turns a handler bug into INTERNAL without leaking it (%s), and keeps serving", async (protocol) => {
    const client = protocol === "grpc" ? server.grpc(Health) : server.http(Health, { protocol });
    const error = await client.check({ service: "explode" }, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Internal);
    expect((error as ConnectError).rawMessage).toBe("internal error");
    expect((error as ConnectError).rawMessage).not.toContain("secret");
    expect((await client.check({ service: "" }, { timeoutMs: 5000 })).status).toBe(Status.SERVING);
  });

  it("rejects a message over --max-message-bytes with RESOURCE_EXHAUSTED on both ports", async () => {
    const huge = "x".repeat(70_000);
    for (const client of [server.grpc(Health), server.http(Health, { protocol: "connect" })]) {
      const error = await client.check({ service: huge }, { timeoutMs: 5000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    }
    expect((await server.grpc(Health).check({ service: "" }, { timeoutMs: 5000 })).status).toBe(Status.SERVING);
  });

  it("lets the handler see the deadline pass, and the client gets DEADLINE_EXCEEDED", async () => {
    aborts.length = 0;
    const error = await server.grpc(Health).check({ service: "slow" }, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.DeadlineExceeded);
    await expect.poll(() => aborts.length, { timeout: 2000 }).toBe(1);
    expect(aborts[0]).toBeInstanceOf(ConnectError);
    expect((aborts[0] as ConnectError).code).toBe(Code.DeadlineExceeded);
  });

  it("exposes gRPC, SQLite and process metrics in Prometheus text", async () => {
    await server.grpc(Health).check({ service: "" }, { timeoutMs: 5000 });
    const res = await fetch(`${server.httpBaseUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toMatch(/grpc_server_started_total\{grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check"\} [1-9]/);
    expect(text).toMatch(/grpc_server_handled_total\{grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="OK"\} [1-9]/);
    expect(text).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="Check",grpc_code="Internal"\} [1-9]/);
    expect(text).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="Check",grpc_code="NotFound"\} [1-9]/);
    // The oversized Check on the HTTP port, which connect-node refuses before the handler runs.
    expect(text).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="Check",grpc_code="ResourceExhausted"\} 1\n/);
    expect(text).toMatch(/grpc_server_handling_seconds_bucket\{[^}]*grpc_method="Check",le="\+Inf"\} [1-9]/);
    expect(text).toMatch(/grpc_server_handling_seconds_count\{[^}]*grpc_method="Check"\} [1-9]/);
    expect(text).toContain("grpc_server_msg_sent_total");
    expect(text).toContain("grpc_server_open_streams");
    expect(text).toContain("latticeforge_sqlite_commit_seconds");
    expect(text).toContain("latticeforge_sqlite_commit_batch_size");
    expect(text).toContain("process_resident_memory_bytes");
    expect(text).toContain("process_cpu_user_seconds_total");
  });

  it("answers liveness and readiness probes", async () => {
    const live = await fetch(`${server.httpBaseUrl}/healthz`);
    expect(live.status).toBe(200);
    const ready = await fetch(`${server.httpBaseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe("ready\n");
  });
});
