import { toBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy } from "../../../gen/envoy/config/cluster/v3/cluster_pb.js";
import { ApiVersion } from "../../../gen/envoy/config/core/v3/config_source_pb.js";
import { HealthStatus } from "../../../gen/envoy/config/core/v3/health_check_pb.js";
import { ClusterLoadAssignmentSchema, type ClusterLoadAssignment } from "../../../gen/envoy/config/endpoint/v3/endpoint_pb.js";
import type { LbEndpoint } from "../../../gen/envoy/config/endpoint/v3/endpoint_components_pb.js";
import { ListenerSchema } from "../../../gen/envoy/config/listener/v3/listener_pb.js";
import { RouteConfigurationSchema } from "../../../gen/envoy/config/route/v3/route_pb.js";
import { RouterSchema } from "../../../gen/envoy/extensions/filters/http/router/v3/router_pb.js";
import { HttpConnectionManagerSchema } from "../../../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js";
import { effectiveWeight, isRoutable, type InstanceRecord } from "../../../server/core/registry/model.js";
import {
  buildCluster,
  buildListener,
  buildLoadAssignment,
  buildRouteConfiguration,
  edsWeight,
  ipEndpoint,
  packServiceResource,
  resourceKindOf,
  resourceService,
  routerFilterName,
  typeUrls,
  xdsResourceKinds,
} from "../../../server/core/xds/resources.js";
import { degraded, healthy, stale, unhealthy, warmingUp } from "./builders.js";

/** An endpoint's address as `ip:port`, its hostname (instance id), health and weight. */
function describeEndpoint(lb: LbEndpoint): { address: string; instanceId: string; health: HealthStatus; weight: number | undefined } {
  if (lb.hostIdentifier.case !== "endpoint") throw new Error(`expected an endpoint, got ${lb.hostIdentifier.case}`);
  const socket = lb.hostIdentifier.value.address?.address;
  if (socket?.case !== "socketAddress") throw new Error(`expected a socket address, got ${socket?.case}`);
  const port = socket.value.portSpecifier;
  if (port.case !== "portValue") throw new Error(`expected a port value, got ${port.case}`);
  return { address: `${socket.value.address}:${port.value}`, instanceId: lb.hostIdentifier.value.hostname, health: lb.healthStatus, weight: lb.loadBalancingWeight };
}

/** The localities of an assignment as `region/zone`, with weight, priority and endpoints. */
function localities(assignment: ClusterLoadAssignment) {
  return assignment.endpoints.map((l) => ({
    locality: `${l.locality?.region}/${l.locality?.zone}`,
    weight: l.loadBalancingWeight,
    priority: l.priority,
    endpoints: l.lbEndpoints.map(describeEndpoint),
  }));
}

describe("buildListener", () => {
  const listener = buildListener("checkout");
  const manager = anyUnpack(listener.apiListener!.apiListener!, HttpConnectionManagerSchema);

  it("is an API listener named after the service holding an HttpConnectionManager", () => {
    expect(listener.name).toBe("checkout");
    expect(listener.apiListener?.apiListener?.typeUrl).toBe(`type.googleapis.com/${HttpConnectionManagerSchema.typeName}`);
    expect(manager).toBeDefined();
  });

  it("fetches route configuration `service` over ADS (xDS v3)", () => {
    expect(manager!.routeSpecifier.case).toBe("rds");
    const rds = manager!.routeSpecifier.case === "rds" ? manager!.routeSpecifier.value : undefined;
    expect(rds?.routeConfigName).toBe("checkout");
    expect(rds?.configSource?.configSourceSpecifier.case).toBe("ads");
    expect(rds?.configSource?.resourceApiVersion).toBe(ApiVersion.V3);
  });

  it("ends its HTTP filters with the router, typed as envoy.extensions.filters.http.router.v3.Router", () => {
    const filters = manager!.httpFilters;
    expect(filters.length).toBeGreaterThan(0);
    const last = filters[filters.length - 1]!;
    expect(last.name).toBe(routerFilterName);
    expect(last.configType.case).toBe("typedConfig");
    const typed = last.configType.case === "typedConfig" ? last.configType.value : undefined;
    expect(typed?.typeUrl).toBe("type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
    expect(anyUnpack(typed!, RouterSchema)).toBeDefined();
  });
});

describe("buildRouteConfiguration", () => {
  it("has one virtual host for the name with and without a port, routing every path to cluster `service`", () => {
    const config = buildRouteConfiguration("checkout");
    expect(config.name).toBe("checkout");
    expect(config.virtualHosts).toHaveLength(1);
    const host = config.virtualHosts[0]!;
    expect(host.domains).toEqual(["checkout", "checkout:*"]);
    expect(host.routes).toHaveLength(1);
    const route = host.routes[0]!;
    expect(route.match?.pathSpecifier).toEqual({ case: "prefix", value: "" });
    expect(route.action.case).toBe("route");
    const action = route.action.case === "route" ? route.action.value : undefined;
    expect(action?.clusterSpecifier).toEqual({ case: "cluster", value: "checkout" });
  });
});

describe("buildCluster", () => {
  it("is an EDS cluster over ADS for service_name `service`, round robin", () => {
    const cluster = buildCluster("checkout");
    expect(cluster.name).toBe("checkout");
    expect(cluster.clusterDiscoveryType).toEqual({ case: "type", value: Cluster_DiscoveryType.EDS });
    expect(cluster.edsClusterConfig?.serviceName).toBe("checkout");
    expect(cluster.edsClusterConfig?.edsConfig?.configSourceSpecifier.case).toBe("ads");
    expect(cluster.edsClusterConfig?.edsConfig?.resourceApiVersion).toBe(ApiVersion.V3);
    expect(cluster.lbPolicy).toBe(Cluster_LbPolicy.ROUND_ROBIN);
  });
});

describe("typeUrls and resourceKindOf", () => {
  it.each([
    ["listener", ListenerSchema.typeName],
    ["route", RouteConfigurationSchema.typeName],
    ["cluster", ClusterSchema.typeName],
    ["endpoint", ClusterLoadAssignmentSchema.typeName],
  ] as const)("maps %s to type.googleapis.com/%s and back", (kind, typeName) => {
    expect(typeUrls[kind]).toBe(`type.googleapis.com/${typeName}`);
    expect(resourceKindOf(typeUrls[kind])).toBe(kind);
  });

  it("lists the kinds in resolution order", () => {
    expect(xdsResourceKinds).toEqual(["listener", "route", "cluster", "endpoint"]);
  });

  it.each([
    "",
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
    "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment",
    "envoy.config.listener.v3.Listener",
  ])("knows no kind for %j", (typeUrl) => {
    expect(resourceKindOf(typeUrl)).toBeUndefined();
  });
});

describe("resourceService", () => {
  it.each([
    ["listener", "checkout", "checkout"],
    ["listener", "checkout:8443", "checkout"],
    ["listener", "checkout:0", undefined],
    ["listener", "checkout:65536", undefined],
    ["listener", "bad name:80", undefined],
    ["route", "checkout", "checkout"],
    ["route", "checkout:8443", undefined],
    ["cluster", "checkout", "checkout"],
    ["endpoint", "checkout", "checkout"],
    ["endpoint", "", undefined],
    ["endpoint", "xdstp://authority/envoy.config.endpoint.v3.ClusterLoadAssignment/checkout", undefined],
  ] as const)("maps a %s named %j to service %j", (kind, name, service) => {
    expect(resourceService(kind, name)).toBe(service);
  });

  it("names a listener asked for with a port after the request, routing to the service", () => {
    const listener = anyUnpack(packServiceResource("listener", "checkout:8443", "checkout"), ListenerSchema)!;
    expect(listener.name).toBe("checkout:8443");
    const manager = anyUnpack(listener.apiListener!.apiListener!, HttpConnectionManagerSchema)!;
    expect(manager.routeSpecifier.case === "rds" && manager.routeSpecifier.value.routeConfigName).toBe("checkout");
  });
});

describe("ipEndpoint", () => {
  it.each([
    ["10.0.0.1:8080", { address: "10.0.0.1", port: 8080 }],
    ["127.0.0.1:1", { address: "127.0.0.1", port: 1 }],
    ["[2001:db8::1]:9090", { address: "2001:db8::1", port: 9090 }],
    ["[::1]:65535", { address: "::1", port: 65_535 }],
  ])("splits %s", (endpoint, expected) => {
    expect(ipEndpoint(endpoint)).toEqual(expected);
  });

  it.each(["checkout.internal:8080", "localhost:80", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", "[::1]", "10.0.0.300:80", ""])(
    "rejects %j",
    (endpoint) => {
      expect(ipEndpoint(endpoint)).toBeUndefined();
    },
  );
});

describe("buildLoadAssignment", () => {
  it("names the assignment after the service; no records give no localities", () => {
    const { assignment, skipped } = buildLoadAssignment("checkout", []);
    expect(assignment.clusterName).toBe("checkout");
    expect(assignment.endpoints).toEqual([]);
    expect(skipped).toEqual([]);
  });

  it("gives every instance its own locality (region, zone, instance id as sub-zone) weighted by its effective weight ×100", () => {
    const records = [
      healthy({ instanceId: "a1", endpoint: "10.0.0.1:80", zone: "eu-west-1a", weight: 30 }),
      healthy({ instanceId: "a2", endpoint: "10.0.0.2:80", zone: "eu-west-1a", weight: 20 }),
      warmingUp({ instanceId: "b1", endpoint: "10.0.0.3:80", zone: "eu-west-1b", weight: 50 }),
      healthy({ instanceId: "b2", endpoint: "10.0.0.4:80", zone: "eu-west-1b", weight: 1 }),
    ];
    const warming = records[2]!;
    // The warm-up record only tells effective from configured weights apart if they differ.
    expect(isRoutable(warming)).toBe(true);
    expect(effectiveWeight(warming)).toBeLessThan(warming.instance.weight);
    const warmingWeight = edsWeight(effectiveWeight(warming));
    expect(warmingWeight).toBe(Math.round(effectiveWeight(warming) * 100));

    const { assignment, skipped } = buildLoadAssignment("checkout", records);
    expect(skipped).toEqual([]);
    expect(assignment.endpoints.map((l) => l.locality?.subZone)).toEqual(["a1", "a2", "b1", "b2"]);
    expect(localities(assignment)).toEqual([
      { locality: "eu-west/eu-west-1a", weight: 3000, priority: 0, endpoints: [{ address: "10.0.0.1:80", instanceId: "a1", health: HealthStatus.HEALTHY, weight: 3000 }] },
      { locality: "eu-west/eu-west-1a", weight: 2000, priority: 0, endpoints: [{ address: "10.0.0.2:80", instanceId: "a2", health: HealthStatus.HEALTHY, weight: 2000 }] },
      { locality: "eu-west/eu-west-1b", weight: warmingWeight, priority: 0, endpoints: [{ address: "10.0.0.3:80", instanceId: "b1", health: HealthStatus.HEALTHY, weight: warmingWeight }] },
      { locality: "eu-west/eu-west-1b", weight: 100, priority: 0, endpoints: [{ address: "10.0.0.4:80", instanceId: "b2", health: HealthStatus.HEALTHY, weight: 100 }] },
    ]);
  });

  it("keeps warm-up steps of a weight-1 instance distinct and never sends weight 0", () => {
    expect(edsWeight(1)).toBe(100);
    expect(edsWeight(0.1)).toBe(10);
    expect(edsWeight(0.125)).toBe(13);
    expect(edsWeight(0.001)).toBe(1);
  });

  it.each([
    ["unhealthy", unhealthy],
    ["stale", stale],
    ["degraded", degraded],
  ] as const)("lists a %s instance UNHEALTHY at weight 1 (listed, never picked)", (_, make) => {
    const down = make({ instanceId: "down", endpoint: "10.0.0.9:80", weight: 40 });
    expect(isRoutable(down)).toBe(false);
    if (make === degraded) expect(down.healthy && !down.stale).toBe(true);
    const up = healthy({ instanceId: "up", endpoint: "10.0.0.1:80", weight: 10 });
    const { assignment } = buildLoadAssignment("checkout", [up, down]);
    expect(localities(assignment).map((l) => [l.endpoints[0]!.instanceId, l.weight, l.endpoints[0]!.health])).toEqual([
      ["down", 1, HealthStatus.UNHEALTHY],
      ["up", 1000, HealthStatus.HEALTHY],
    ]);
  });

  it("serves IPv4 and IPv6 endpoints and skips hostnames as not_ip", () => {
    const records = [
      healthy({ instanceId: "v4", endpoint: "10.0.0.1:8080" }),
      healthy({ instanceId: "v6", endpoint: "[2001:db8::7]:8443" }),
      healthy({ instanceId: "named", endpoint: "checkout-0.internal:8080" }),
    ];
    const { assignment, skipped } = buildLoadAssignment("checkout", records);
    expect(localities(assignment).map((l) => l.endpoints[0]!.address)).toEqual(["10.0.0.1:8080", "2001:db8::7:8443"]);
    expect(skipped).toEqual([{ instanceId: "named", endpoint: "checkout-0.internal:8080", reason: "not_ip" }]);
  });

  it("serves one of several instances on one ip:port (the latest registered) and skips the others as duplicate_address", () => {
    const records = [
      healthy({ instanceId: "b", endpoint: "10.0.0.1:80", zone: "eu-west-1b" }),
      healthy({ instanceId: "a", endpoint: "10.0.0.1:80", zone: "eu-west-1a" }),
      healthy({ instanceId: "c", endpoint: "10.0.0.1:81", zone: "eu-west-1a" }),
      healthy({ instanceId: "v6", endpoint: "[2001:db8::1]:80" }),
      healthy({ instanceId: "v6-long", endpoint: "[2001:db8:0:0::1]:80" }),
    ];
    const { assignment, skipped } = buildLoadAssignment("checkout", records);
    // Equal registration times: the lower id is kept; IPv6 spellings of one address are one address.
    expect(skipped).toEqual([
      { instanceId: "b", endpoint: "10.0.0.1:80", reason: "duplicate_address" },
      { instanceId: "v6-long", endpoint: "[2001:db8:0:0::1]:80", reason: "duplicate_address" },
    ]);
    expect(localities(assignment).map((l) => l.endpoints[0]!.instanceId)).toEqual(["a", "c", "v6"]);
  });

  it("does not let an unroutable instance shadow a routable one registered at the same address", () => {
    // A restarted process re-registers at its old ip:port under a new id while
    // the old instance is still stale (not yet evicted).
    const records = [
      stale({ instanceId: "checkout-a", endpoint: "10.0.0.1:80" }),
      healthy({ instanceId: "checkout-b", endpoint: "10.0.0.1:80" }),
    ];
    const { assignment } = buildLoadAssignment("checkout", records);
    const served = localities(assignment).flatMap((l) => l.endpoints);
    expect(served).toEqual([expect.objectContaining({ address: "10.0.0.1:80", instanceId: "checkout-b", health: HealthStatus.HEALTHY })]);
  });

  describe("priorities", () => {
    const eu = healthy({ instanceId: "eu-1", endpoint: "10.0.0.1:80", region: "eu-west", zone: "eu-west-1a" });
    const eu2 = healthy({ instanceId: "eu-2", endpoint: "10.0.0.2:80", region: "eu-west", zone: "eu-west-1b" });
    const us = healthy({ instanceId: "us-1", endpoint: "10.0.1.1:80", region: "us-east", zone: "us-east-1a" });
    const euDown = unhealthy({ instanceId: "eu-3", endpoint: "10.0.0.3:80", region: "eu-west", zone: "eu-west-1a" });

    it.each([
      ["the client's region first when it and another region are served", [eu, eu2, us], "eu-west", [["eu-west/eu-west-1a", 0], ["eu-west/eu-west-1b", 0], ["us-east/us-east-1a", 1]]],
      ["no priorities when only the client's region is served", [eu, eu2], "eu-west", [["eu-west/eu-west-1a", 0], ["eu-west/eu-west-1b", 0]]],
      ["no priorities when the client's region is not served", [eu, us], "ap-south", [["eu-west/eu-west-1a", 0], ["us-east/us-east-1a", 0]]],
      ["no priorities without a client region", [eu, us], undefined, [["eu-west/eu-west-1a", 0], ["us-east/us-east-1a", 0]]],
      ["no priorities when the client's region has no routable instance", [euDown, us], "eu-west", [["eu-west/eu-west-1a", 0], ["us-east/us-east-1a", 0]]],
    ] as const)("%s", (_, records, region, expected) => {
      const { assignment } = buildLoadAssignment("checkout", records, region);
      expect(localities(assignment).map((l) => [l.locality, l.priority])).toEqual(expected);
    });
  });

  it("is byte-identical for the same records in any order", () => {
    const records = [
      healthy({ instanceId: "c", endpoint: "10.0.0.3:80", region: "us-east", zone: "us-east-1a", weight: 3 }),
      healthy({ instanceId: "a", endpoint: "10.0.0.1:80", zone: "eu-west-1b", weight: 1 }),
      unhealthy({ instanceId: "d", endpoint: "10.0.0.4:80", zone: "eu-west-1a" }),
      healthy({ instanceId: "b", endpoint: "[2001:db8::2]:80", zone: "eu-west-1a", weight: 2 }),
      healthy({ instanceId: "e", endpoint: "10.0.0.1:80", zone: "eu-west-1a" }),
      healthy({ instanceId: "f", endpoint: "f.internal:80", zone: "eu-west-1a" }),
    ];
    const orders = [records, [...records].reverse(), [records[3]!, records[0]!, records[5]!, records[1]!, records[4]!, records[2]!]];
    const built = orders.map((order: InstanceRecord[]) => buildLoadAssignment("checkout", order, "eu-west"));
    const bytes = built.map(({ assignment }) => Buffer.from(toBinary(ClusterLoadAssignmentSchema, assignment)).toString("hex"));
    expect(new Set(bytes).size).toBe(1);
    expect(built[1]!.skipped).toEqual(built[0]!.skipped);
    expect(built[2]!.skipped).toEqual(built[0]!.skipped);
    expect(built[0]!.assignment.endpoints.map((l) => l.locality?.subZone)).toEqual(["a", "b", "c", "d"]); // e shares a's address
  });
});
