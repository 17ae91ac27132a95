/** `latticeforge xds bootstrap` and `latticeforge xds clients` against a real server and a real gRPC xDS client. */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { runCli } from "../../fixtures/cli-run.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { callUntil, startBackend, type Backend } from "../../fixtures/xds.js";

// @grpc/grpc-js-xds's own bootstrap validator: what its clients enforce.
const { validateBootstrapConfig } = (await import(
  "@grpc/grpc-js-xds/build/src/xds-bootstrap.js" as string
)) as { validateBootstrapConfig: (value: unknown) => unknown };

describe("latticeforge xds", () => {
  let server: TestControlPlane;
  let backend: Backend;
  beforeAll(async () => {
    server = await startTestControlPlane();
    backend = await startBackend("cli-b1");
    await server.grpc(RegistryService).register(
      { instance: { instanceId: "cli-b1", serviceName: "cli-svc", endpoint: backend.endpoint, region: "eu-west", zone: "eu-west-1a", weight: 10 } },
      { timeoutMs: 5000 },
    );
  });
  afterAll(async () => {
    await backend.stop();
    await server.stop();
  });

  it("bootstrap prints a bootstrap gRPC's xDS client accepts and can route with", async () => {
    const { code, stdout, stderr } = await runCli([
      "xds", "bootstrap", "--addr", server.grpcAddress, "--node-id", "cli-node", "--locality", "eu-west/eu-west-1a", "--cluster", "web",
    ]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const bootstrap = JSON.parse(stdout) as { node: { id: string; cluster: string; locality: unknown }; xds_servers: { server_uri: string }[] };
    expect(() => validateBootstrapConfig(bootstrap)).not.toThrow();
    expect(bootstrap.node).toEqual({ id: "cli-node", cluster: "web", locality: { region: "eu-west", zone: "eu-west-1a" } });
    expect(bootstrap.xds_servers[0]!.server_uri).toBe(server.grpcAddress);

    const client = new grpc.Client("xds:///cli-svc", grpc.credentials.createInsecure(), {
      "grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config": stdout,
    });
    try {
      await callUntil(client, (name) => name === "cli-b1", 10_000, "a call routed by the printed bootstrap");

      const listed = await runCli(["xds", "clients", "--addr", server.grpcAddress]);
      expect(listed.code).toBe(0);
      const lines = listed.stdout.trim().split("\n");
      expect(lines[0]).toMatch(/^NODE\s+LOCALITY\s+AGENT\s+CONNECTED\s+TYPE\s+NAMES\s+SENT\s+ACKED\s+LAST NACK$/);
      const eds = lines.find((line) => line.includes(" EDS "));
      expect(eds).toMatch(/^cli-node\s+eu-west\/eu-west-1a\s+gRPC Node/);
      expect(eds).toContain("cli-svc");

      const json = await runCli(["xds", "clients", "--addr", server.grpcAddress, "--node-id", "cli-node", "--json"]);
      expect(json.code).toBe(0);
      const parsed = JSON.parse(json.stdout) as { clients: { nodeId: string; subscriptions: { typeUrl: string; ackedVersion: string }[] }[] };
      expect(parsed.clients.map((c) => c.nodeId)).toEqual(["cli-node"]);
      expect(parsed.clients[0]!.subscriptions).toHaveLength(4);
      expect(parsed.clients[0]!.subscriptions.every((s) => s.ackedVersion !== "")).toBe(true);
    } finally {
      client.close();
    }
  });

  it("clients --node-id for a node that is not connected exits 1 and says so", async () => {
    const { code, stderr } = await runCli(["xds", "clients", "--addr", server.grpcAddress, "--node-id", "nobody"]);
    expect(code).toBe(1);
    expect(stderr).toContain('no connected xDS client with node id "nobody"');
  });

  it.each([
    [["xds", "bootstrap"], "--node-id is required"],
    [["xds", "bootstrap", "--node-id", "n", "--locality", "eu-west"], "--locality must be REGION/ZONE"],
    [["xds", "bootstrap", "--node-id", "n", "--channel-creds", "tls"], "--channel-creds must be insecure or google_default"],
    [["xds", "bootstrap", "--node-id", "n", "--addr", "no-port"], "xds_servers[0].server_uri must be host:port"],
    [["xds", "frobnicate"], 'unknown subcommand "frobnicate"'],
  ])("%j is a usage error: %s", async (args, message) => {
    const { code, stderr } = await runCli(args);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
  });
});
