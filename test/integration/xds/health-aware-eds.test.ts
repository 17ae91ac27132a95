/**
 * Health-aware routing as xDS clients see it: a latency-degraded instance
 * (score < 0.3, though its checks say healthy) leaves EDS and the real
 * @grpc/grpc-js-xds client stops calling it; once it recovers it warms up,
 * its locality weight (effective weight ×100) climbing the exponential ramp
 * push by push.
 */
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import type { Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthStatus } from "../../../gen/envoy/config/core/v3/health_check_pb.js";
import { ClusterLoadAssignmentSchema, type ClusterLoadAssignment } from "../../../gen/envoy/config/endpoint/v3/endpoint_pb.js";
import { AggregatedDiscoveryService } from "../../../gen/envoy/service/discovery/v3/ads_pb.js";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { warmupFactor, warmupSteps } from "../../../server/core/registry/health-score.js";
import { edsWeight, typeUrls } from "../../../server/core/xds/resources.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { AdsStream } from "../../fixtures/ads-stream.js";
import { callUntil, startBackend, who, xdsClient, type Backend } from "../../fixtures/xds.js";

const opts = { timeoutMs: 5000 };
/** τ = 0.3 s; a 1,000 ms check scores 0.1 against the 100 ms target; a 1.5 s warm-up (a step every 150 ms). */
const flags = { "health-window": "0.3", "health-latency-target": "100", warmup: "1.5", "reap-interval": "0.02" };

/** A raw ADS stream subscribed to one service's EDS; `next` reads the next assignment and ACKs it. */
function edsStream(server: TestControlPlane, service: string) {
  const stream = new AdsStream(server.grpc(AggregatedDiscoveryService));
  stream.send({ typeUrl: typeUrls.endpoint, resourceNames: [service], node: { id: `eds-${service}` } });
  return {
    async next(): Promise<ClusterLoadAssignment> {
      const response = await stream.next();
      stream.send({ typeUrl: typeUrls.endpoint, resourceNames: [service], versionInfo: response.versionInfo, responseNonce: response.nonce });
      return anyUnpack(response.resources[0]!, ClusterLoadAssignmentSchema)!;
    },
    close: () => stream.close(),
  };
}

/** Locality zone → (weight, endpoint health by hostname = instance id). */
function localities(assignment: ClusterLoadAssignment): Map<string, { weight: number; endpoints: Map<string, HealthStatus> }> {
  return new Map(
    assignment.endpoints.map((locality) => [
      locality.locality!.zone,
      {
        weight: locality.loadBalancingWeight ?? 0,
        endpoints: new Map(
          locality.lbEndpoints.map((e) => [e.hostIdentifier.case === "endpoint" ? e.hostIdentifier.value.hostname : "", e.healthStatus]),
        ),
      },
    ]),
  );
}

describe("health-aware EDS", () => {
  let server: TestControlPlane;
  let registry: Client<typeof RegistryService>;
  let fast: Backend;
  let slow: Backend;
  const clients: grpc.Client[] = [];
  beforeAll(async () => {
    server = await startTestControlPlane({ flags });
    registry = server.grpc(RegistryService);
    [fast, slow] = await Promise.all([startBackend("fast"), startBackend("slow")]);
    for (const [backend, zone] of [[fast, "eu-west-1a"], [slow, "eu-west-1b"]] as const) {
      await registry.register(
        { instance: { instanceId: backend.name, serviceName: "scored", endpoint: backend.endpoint, region: "eu-west", zone, weight: 50 } },
        opts,
      );
    }
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([fast.stop(), slow.stop()]);
    await server.stop();
  });

  it("drops a latency-degraded instance from EDS and traffic, then warms it up step by step", async () => {
    const client = xdsClient("scored", { serverUri: server.grpcAddress, nodeId: "scored-client", locality: { region: "eu-west", zone: "eu-west-1a" } });
    clients.push(client);
    await callUntil(client, (name) => name === "slow", 10_000, "slow reached while healthy");
    const eds = edsStream(server, "scored");
    try {
      const initial = localities(await eds.next());
      expect(initial.get("eu-west-1b")).toEqual({ weight: 5000, endpoints: new Map([["slow", HealthStatus.HEALTHY]]) });

      // Healthy checks, but at 10× the latency target: the score sinks below 0.3 within ~0.7 s.
      await registry.updateHealth({ status: { instanceId: "slow", healthy: true, latencyMs: 1000, consecutiveFailures: 0 } }, opts);
      const degradedAt = Date.now();
      let assignment = localities(await eds.next());
      while (assignment.get("eu-west-1b")?.endpoints.get("slow") === HealthStatus.HEALTHY) assignment = localities(await eds.next());
      expect(assignment.get("eu-west-1b")).toEqual({ weight: 1, endpoints: new Map([["slow", HealthStatus.UNHEALTHY]]) });
      expect(assignment.get("eu-west-1a")).toEqual({ weight: 5000, endpoints: new Map([["fast", HealthStatus.HEALTHY]]) });
      const removedAt = Date.now();
      expect(removedAt - degradedAt).toBeGreaterThan(200); // smoothed: not on the first slow check
      const { instances } = await registry.resolve({ serviceName: "scored", healthyOnly: false }, opts);
      expect(instances.find((i) => i.instance?.instanceId === "slow")).toMatchObject({ healthy: true, degraded: true, effectiveWeight: 0 });
      // The client follows: a second after the push, only "fast" answers.
      const answers: { name: string; at: number }[] = [];
      while (Date.now() < removedAt + 1500) answers.push({ name: await who(client), at: Date.now() });
      expect(answers.filter((a) => a.name === "slow" && a.at > removedAt + 1000)).toEqual([]);
      expect(answers.some((a) => a.name === "fast")).toBe(true);

      // Fast checks again: the score recovers past 0.3 and the instance warms up, one push per ramp step.
      await registry.updateHealth({ status: { instanceId: "slow", healthy: true, latencyMs: 5, consecutiveFailures: 0 } }, opts);
      const weights: number[] = [];
      while (weights.at(-1) !== 5000) {
        const zone = localities(await eds.next()).get("eu-west-1b");
        if (zone?.endpoints.get("slow") === HealthStatus.HEALTHY) weights.push(zone.weight);
      }
      const ramp = Array.from({ length: warmupSteps + 1 }, (_, step) => edsWeight(50 * warmupFactor(step)));
      expect(ramp[0]).toBe(500);
      expect(weights[0]).toBe(500);
      expect(weights).toEqual([...new Set(weights)].sort((a, b) => a - b)); // strictly rising
      for (const weight of weights) expect(ramp).toContain(weight);
      await callUntil(client, (name) => name === "slow", 5000, "slow back after its warm-up");
    } finally {
      eds.close();
    }
  }, 30_000);
});
