import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { GrpcConnection } from "../../../client/grpc-client.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { openDatabase, closeDatabase } from "../../../server/store/database.js";
import { migrations } from "../../../server/store/migrations.js";
import { openIdleStreams, type IdleStreams } from "../../fixtures/idle-streams.js";
import { create } from "@bufbuild/protobuf";
import { Client, credentials } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../../client/grpc-definition.js";
import { RegistryService, ServiceInstanceSchema, WatchTopologyRequestSchema } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { spawnCli, startServerProcess } from "../../fixtures/server-process.js";
import { nextWithin, within } from "../../fixtures/streams.js";

/** Instance `n` of one service, with enough metadata to make changes big. */
function bulkInstance(n: number) {
  return create(ServiceInstanceSchema, {
    instanceId: `bulk-${n}`,
    serviceName: "bulk",
    endpoint: `10.0.${(n >> 8) & 255}.${n & 255}:${1000 + (n % 60000)}`,
    region: "us-east-1",
    zone: "us-east-1a",
    weight: 10,
    metadata: { pod: `bulk-7d9f8b6c5-${n}`, node: `ip-10-0-${n}.ec2.internal`, version: "2.14.3", commit: "3f9a2c1e7b" },
  });
}

describe("latticeforge serve as a process", () => {
  const dirs: string[] = [];
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "latticeforge-proc-"));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("on SIGTERM ends open streams with UNAVAILABLE, logs each step, exits 0, and leaves a clean database", async () => {
    const db = join(tempDir(), "nested", "dir", "cp.db");
    const server = await startServerProcess(["--db", db, "--shutdown-timeout", "5"]);
    const conn = new GrpcConnection({ address: server.grpc });
    try {
      const stream = conn.client(Health).watch({ service: "" }, { timeoutMs: 15_000 })[Symbol.asyncIterator]();
      expect((await nextWithin(stream)).value?.status).toBe(Status.SERVING);
      server.child.kill("SIGTERM");
      expect((await nextWithin(stream)).value?.status).toBe(Status.NOT_SERVING);
      const end = await nextWithin(stream).catch((e: unknown) => e);
      expect(end).toBeInstanceOf(ConnectError);
      expect((end as ConnectError).code).toBe(Code.Unavailable);
      expect(await within(server.exited, 8000, "exit after SIGTERM")).toBe(0);
    } finally {
      conn.close();
    }
    const steps = server.logs.map((l) => l.msg);
    expect(steps).toEqual(
      expect.arrayContaining([
        "shutdown: signal received",
        "shutdown: health set to NOT_SERVING",
        "shutdown: refusing new calls, ending open streams with UNAVAILABLE",
        "shutdown: in-flight calls done; flushing pending commits",
        "shutdown: database checkpointed and closed",
        "shutdown: complete",
      ]),
    );
    const reopened = openDatabase({ path: db, durability: "full", migrations });
    expect(reopened.pragma("integrity_check", { simple: true })).toBe("ok");
    closeDatabase(reopened);
  });

  it("ends streams idle between requests (bidi and client streaming) with UNAVAILABLE at once on SIGTERM", async () => {
    const server = await startServerProcess(["--db", ":memory:", "--shutdown-timeout", "60"]);
    const conn = new GrpcConnection({ address: server.grpc });
    let streams: IdleStreams | undefined;
    try {
      streams = await openIdleStreams(conn.client(MirrorService), conn.client(ServerReflection));
      const signalledAt = Date.now();
      server.child.kill("SIGTERM");
      expect(await streams.reflectionEnd()).toBe(Code.Unavailable);
      expect(await within(streams.captureEnd, 5000, "CaptureStream to end")).toBe(Code.Unavailable);
      expect(await within(server.exited, 10_000, "exit")).toBe(0);
      expect(Date.now() - signalledAt).toBeLessThan(10_000); // not the 60 s --shutdown-timeout
      expect(server.logs.map((l) => l.msg)).toContain("shutdown: complete");
    } finally {
      streams?.release();
      conn.close();
    }
  });

  it("exits after the shutdown timeout even while a client that stopped reading holds a stream full of data", async () => {
    const server = await startServerProcess(["--db", join(tempDir(), "cp.db"), "--shutdown-timeout", "1", "--max-instances-per-service", "100000"]);
    const conn = new GrpcConnection({ address: server.grpc });
    const registry = conn.client(RegistryService);
    const stuck = new Client(server.grpc, credentials.createInsecure());
    try {
      const method = grpcServiceDefinition(RegistryService).watchTopology!;
      const watch = stuck.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, create(WatchTopologyRequestSchema, {}));
      watch.on("error", () => undefined);
      await within(new Promise((resolve) => watch.once("data", resolve)), 5000, "the snapshot");
      watch.pause(); // reads nothing more: flow control fills up on the server side
      // ~10 MB of changes (thousand-instance bulk registrations), far past the HTTP/2 windows.
      for (let round = 0; round < 20; round++) {
        const instances = Array.from({ length: 1000 }, (_, i) => bulkInstance(round * 1000 + i));
        expect((await registry.bulkRegister({ instances }, { timeoutMs: 10_000 })).results.every((r) => r.registered)).toBe(true);
      }
      const signalledAt = Date.now();
      server.child.kill("SIGTERM");
      expect(await within(server.exited, 10_000, "exit after SIGTERM")).toBe(0);
      expect(Date.now() - signalledAt).toBeLessThan(8000);
      expect(server.logs.map((l) => l.msg)).toContain("shutdown: timeout reached; cancelling remaining gRPC calls");
    } finally {
      stuck.close();
      conn.close();
    }
  });

  it("exits at once on a second signal while the shutdown waits for an in-flight call", async () => {
    const server = await startServerProcess(["--db", ":memory:", "--shutdown-timeout", "60"]);
    // An OTLP/HTTP upload that never finishes its body: an in-flight call the shutdown waits for.
    const [host, port] = server.http.replace(/^http:\/\//, "").split(":") as [string, string];
    const upload = net.connect(Number(port), host);
    try {
      await new Promise<void>((resolve, reject) => upload.once("connect", resolve).once("error", reject));
      upload.write("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n\x0a");
      await new Promise((resolve) => setTimeout(resolve, 200));
      server.child.kill("SIGTERM");
      await expect.poll(() => server.logs.some((l) => l.msg === "shutdown: refusing new calls, ending open streams with UNAVAILABLE"), { timeout: 5000 }).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(server.logs.some((l) => l.msg === "shutdown: complete")).toBe(false);
      server.child.kill("SIGTERM");
      expect(await within(server.exited, 5000, "exit after the second signal")).toBe(1);
      expect(server.logs.map((l) => l.msg)).toContain("second signal: exiting without finishing the shutdown");
    } finally {
      upload.destroy();
    }
  });

  it("refuses a port in use with one clear line and a non-zero exit", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const proc = spawnCli(["serve", "--listen", `127.0.0.1:${port}`, "--http-listen", "127.0.0.1:0", "--db", ":memory:"]);
      expect(await within(proc.exited, 8000, "exit")).toBe(1);
      expect(proc.stderr().trim()).toBe(`latticeforge serve: cannot listen on 127.0.0.1:${port} (--listen): address already in use`);
    } finally {
      blocker.close();
    }
  });

  it("refuses a bad flag value naming the flag, exit code 2", async () => {
    const proc = spawnCli(["serve", "--durability", "sometimes", "--db", ":memory:"]);
    expect(await within(proc.exited, 8000, "exit")).toBe(2);
    expect(proc.stderr().trim()).toBe('latticeforge serve: --durability must be one of normal, full, got "sometimes"');
  });

  it("refuses a bad environment value naming the variable", async () => {
    const proc = spawnCli(["serve", "--db", ":memory:"], { LATTICEFORGE_MAX_MESSAGE_BYTES: "lots" });
    expect(await within(proc.exited, 8000, "exit")).toBe(2);
    expect(proc.stderr()).toContain("LATTICEFORGE_MAX_MESSAGE_BYTES");
  });

  it("refuses an unusable database path with one clear line", async () => {
    const file = join(tempDir(), "a-file");
    writeFileSync(file, "not a directory");
    const proc = spawnCli(["serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--db", join(file, "cp.db")]);
    expect(await within(proc.exited, 8000, "exit")).toBe(1);
    const lines = proc.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(join(file, "cp.db"));
  });

  it("prints every flag with its variable and default under --help", async () => {
    const proc = spawnCli(["serve", "--help"]);
    expect(await within(proc.exited, 8000, "exit")).toBe(0);
    let out = "";
    proc.child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    await new Promise((r) => setTimeout(r, 50));
    const help = proc.logs.map((l) => l.msg).join("\n") + out;
    expect(help).toContain("LATTICEFORGE_DURABILITY (default full)");
    // The longest flag still leaves a gap before its variable.
    expect(help).toMatch(/--health-latency-target <value> {2,}LATTICEFORGE_HEALTH_LATENCY_TARGET \(default 250\)/);
  });
});
