import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { spawnCli } from "../../fixtures/server-process.js";
import { within } from "../../fixtures/streams.js";

/** Runs `latticeforge <args>` to completion; returns exit code and stdout. */
async function cli(args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const proc = spawnCli(args);
  let stdout = "";
  proc.child.stdout.removeAllListeners("data");
  proc.child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await within(proc.exited, 10_000, `latticeforge ${args.join(" ")}`);
  return { code, stdout, stderr: proc.stderr() };
}

describe("latticeforge registry (CLI)", () => {
  let server: TestControlPlane;
  let addr: string[];
  beforeAll(async () => {
    server = await startTestControlPlane();
    addr = ["--addr", server.grpcAddress];
  });
  afterAll(() => server.stop());

  it("registers, resolves as a table and as JSON, shows the topology, and deregisters", async () => {
    const registered = await cli([
      "registry", "register", ...addr, "--service", "cli-svc", "--id", "cli-1", "--endpoint", "10.1.0.1:80",
      "--region", "eu", "--zone", "eu-a", "--weight", "70", "--meta", "version=2",
    ]);
    expect(registered.code).toBe(0);
    expect(registered.stdout).toMatch(/^registered cli-1 at revision \d+$/m);

    const table = await cli(["registry", "resolve", "cli-svc", ...addr]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^cli-svc\s+cli-1\s+10\.1\.0\.1:80\s+eu\/eu-a\s+70\s+70\s+1\.00\s+healthy\s+0$/m);

    const json = await cli(["registry", "resolve", "cli-svc", ...addr, "--json"]);
    const parsed = JSON.parse(json.stdout) as { instances: { instance: { metadata: Record<string, string> } }[] };
    expect(parsed.instances[0]!.instance.metadata).toEqual({ version: "2" });

    const topology = await cli(["registry", "topology", ...addr]);
    expect(topology.stdout).toMatch(/^cli-svc\s+eu\s+1\s+1$/m);

    const removed = await cli(["registry", "deregister", "cli-1", ...addr]);
    expect(removed.code).toBe(0);
    const again = await cli(["registry", "deregister", "cli-1", ...addr]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("NotFound");
  });

  it("selects with power-of-two-choices and shows a warming instance's effective weight, score and status", async () => {
    for (const [id, weight] of [["p2c-1", "70"], ["p2c-2", "20"]] as const) {
      const registered = await cli([
        "registry", "register", ...addr, "--service", "cli-p2c", "--id", id, "--endpoint", "10.1.0.2:80",
        "--region", "eu", "--zone", "eu-a", "--weight", weight,
      ]);
      expect(registered.code).toBe(0);
    }
    expect((await cli(["registry", "heartbeat", "p2c-2", ...addr, "--connections", "9"])).code).toBe(0);
    const selected = await cli(["registry", "select", "cli-p2c", ...addr, "--strategy", "power-of-two-choices"]);
    expect(selected.code).toBe(0);
    expect(selected.stdout).toMatch(/^cli-p2c\s+p2c-1\s+10\.1\.0\.2:80\s+eu\/eu-a\s+70\s+70\s+1\.00\s+healthy\s+0$/m);

    const registry = server.grpc(RegistryService);
    await registry.updateHealth({ status: { instanceId: "p2c-1", healthy: false, consecutiveFailures: 1 } }, { timeoutMs: 5000 });
    await registry.updateHealth({ status: { instanceId: "p2c-1", healthy: true, latencyMs: 5 } }, { timeoutMs: 5000 });
    const table = await cli(["registry", "resolve", "cli-p2c", ...addr]);
    expect(table.stdout).toMatch(/^SERVICE\s+INSTANCE\s+ENDPOINT\s+LOCALITY\s+WEIGHT\s+EFFECTIVE\s+SCORE\s+STATUS\s+CONNECTIONS$/m);
    expect(table.stdout).toMatch(/^cli-p2c\s+p2c-1\s+10\.1\.0\.2:80\s+eu\/eu-a\s+70\s+7\s+(0\.9\d|1\.00)\s+warming\s+0$/m);
    expect(table.stdout).toMatch(/^cli-p2c\s+p2c-2\s+10\.1\.0\.2:80\s+eu\/eu-a\s+20\s+20\s+1\.00\s+healthy\s+9$/m);
  });

  it("reports a bad flag value with the usage and exit code 2", async () => {
    const bad = await cli(["registry", "register", ...addr, "--service", "x"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--id is required");
  });

  it("reports a server-side validation error with its code, exit 1", async () => {
    const bad = await cli([
      "registry", "register", ...addr, "--service", "cli-svc", "--id", "cli-2", "--endpoint", "nope",
      "--region", "eu", "--zone", "eu-a",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("InvalidArgument: instance.endpoint");
  });
});
