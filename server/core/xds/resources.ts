/**
 * The xDS resources that describe one registry service to proxies and gRPC
 * clients: a Listener, a RouteConfiguration, a Cluster and a
 * ClusterLoadAssignment, all named after the service, and all pure
 * functions of the registry's records.
 */
import { create, type DescMessage } from "@bufbuild/protobuf";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { isIP } from "node:net";
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster } from "../../../gen/envoy/config/cluster/v3/cluster_pb.js";
import { ApiVersion, type ConfigSource } from "../../../gen/envoy/config/core/v3/config_source_pb.js";
import { HealthStatus } from "../../../gen/envoy/config/core/v3/health_check_pb.js";
import {
  ClusterLoadAssignmentSchema,
  type ClusterLoadAssignment,
} from "../../../gen/envoy/config/endpoint/v3/endpoint_pb.js";
import {
  LbEndpointSchema,
  LocalityLbEndpointsSchema,
  type LbEndpoint,
} from "../../../gen/envoy/config/endpoint/v3/endpoint_components_pb.js";
import { ListenerSchema, type Listener } from "../../../gen/envoy/config/listener/v3/listener_pb.js";
import { RouteConfigurationSchema, type RouteConfiguration } from "../../../gen/envoy/config/route/v3/route_pb.js";
import { RouterSchema } from "../../../gen/envoy/extensions/filters/http/router/v3/router_pb.js";
import { HttpConnectionManagerSchema } from "../../../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js";
import { effectiveWeight, isRoutable, type InstanceRecord } from "../registry/model.js";
import { compareText } from "../registry/ordering.js";
import { isValidServiceName, splitHostPort } from "../registry/validation.js";

/** The four resource kinds served per registry service, in the order a client resolves them. */
export type XdsResourceKind = "listener" | "route" | "cluster" | "endpoint";

/** Every served kind, in resolution order. */
export const xdsResourceKinds: readonly XdsResourceKind[] = ["listener", "route", "cluster", "endpoint"];

/** The message type of each kind's resources. */
export const resourceSchemas = {
  listener: ListenerSchema,
  route: RouteConfigurationSchema,
  cluster: ClusterSchema,
  endpoint: ClusterLoadAssignmentSchema,
} as const satisfies Readonly<Record<XdsResourceKind, DescMessage>>;

/** The xDS v3 type URL of each kind (`type.googleapis.com/` and the message's full name). */
export const typeUrls: Readonly<Record<XdsResourceKind, string>> = Object.fromEntries(
  xdsResourceKinds.map((kind) => [kind, `type.googleapis.com/${resourceSchemas[kind].typeName}`]),
) as Record<XdsResourceKind, string>;

const kindsByTypeUrl = new Map(xdsResourceKinds.map((kind) => [typeUrls[kind], kind]));

/** The kind a type URL names, or undefined for a type this server does not serve. */
export function resourceKindOf(typeUrl: string): XdsResourceKind | undefined {
  return kindsByTypeUrl.get(typeUrl);
}

const listenerPortPattern = /^(.*):([1-9][0-9]{0,4})$/;

/**
 * The registry service a requested resource name describes, or undefined
 * when the name cannot be one (the resource then does not exist). Resources
 * are named after their service; a listener may also carry the port the
 * client dialled (`xds:///S:8080` asks for Listener `S:8080`).
 */
export function resourceService(kind: XdsResourceKind, name: string): string | undefined {
  if (isValidServiceName(name)) return name;
  if (kind !== "listener") return undefined;
  const match = listenerPortPattern.exec(name);
  return match !== null && Number(match[2]) <= 65_535 && isValidServiceName(match[1]!) ? match[1] : undefined;
}

/** The Listener, RouteConfiguration or Cluster named `name` for `service`, packed. */
export function packServiceResource(kind: Exclude<XdsResourceKind, "endpoint">, name: string, service: string): Any {
  switch (kind) {
    case "listener":
      return anyPack(ListenerSchema, buildListener(name, service));
    case "route":
      return anyPack(RouteConfigurationSchema, buildRouteConfiguration(service));
    case "cluster":
      return anyPack(ClusterSchema, buildCluster(service));
  }
}

/** The name of Envoy's router filter, which must be the last HTTP filter. */
export const routerFilterName = "envoy.filters.http.router";

/** Resources of every kind are fetched over the same ADS stream. */
function overAds(): ConfigSource {
  return {
    configSourceSpecifier: { case: "ads", value: {} },
    resourceApiVersion: ApiVersion.V3,
  } as ConfigSource;
}

/**
 * The Listener `name` (the service, or `service:port`): an API listener
 * (what gRPC clients resolve `xds:///name` to) holding an
 * HttpConnectionManager that fetches the route configuration `service` over
 * ADS and ends with the router filter.
 */
export function buildListener(name: string, service: string = name): Listener {
  const connectionManager = create(HttpConnectionManagerSchema, {
    statPrefix: service,
    routeSpecifier: { case: "rds", value: { configSource: overAds(), routeConfigName: service } },
    httpFilters: [
      { name: routerFilterName, configType: { case: "typedConfig", value: anyPack(RouterSchema, create(RouterSchema)) } },
    ],
  });
  return create(ListenerSchema, {
    name,
    apiListener: { apiListener: anyPack(HttpConnectionManagerSchema, connectionManager) },
  });
}

/**
 * The RouteConfiguration `service`: one virtual host matching the service's
 * name (with or without a port) whose default route goes to cluster `service`.
 * The domain must match the name clients dial, or they ACK and then wait
 * for a matching host until their deadline.
 */
export function buildRouteConfiguration(service: string): RouteConfiguration {
  return create(RouteConfigurationSchema, {
    name: service,
    virtualHosts: [
      {
        name: service,
        domains: [service, `${service}:*`],
        routes: [
          {
            match: { pathSpecifier: { case: "prefix", value: "" } },
            action: { case: "route", value: { clusterSpecifier: { case: "cluster", value: service } } },
          },
        ],
      },
    ],
  });
}

/** The Cluster `service`: EDS over ADS, round robin within localities weighted by the EDS locality weights. */
export function buildCluster(service: string): Cluster {
  return create(ClusterSchema, {
    name: service,
    clusterDiscoveryType: { case: "type", value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: overAds(), serviceName: service },
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
  });
}

/** An instance left out of a ClusterLoadAssignment, and why. */
export interface SkippedEndpoint {
  readonly instanceId: string;
  readonly endpoint: string;
  /** `not_ip`: a hostname, which gRPC clients reject; `duplicate_address`: another instance has the same address. */
  readonly reason: "not_ip" | "duplicate_address";
}

/** A built ClusterLoadAssignment and the instances it had to leave out. */
export interface LoadAssignment {
  readonly assignment: ClusterLoadAssignment;
  readonly skipped: readonly SkippedEndpoint[];
}

/** An IP endpoint split into address and port; undefined when the host is not an IP literal. */
export function ipEndpoint(endpoint: string): { readonly address: string; readonly port: number } | undefined {
  const parts = splitHostPort(endpoint);
  if (parts === undefined) return undefined;
  const host = parts.host.startsWith("[") && parts.host.endsWith("]") ? parts.host.slice(1, -1) : parts.host;
  const port = Number(parts.port);
  if (isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { address: host, port };
}

/** An IP address in one spelling per address (`0::1` and `::1` alike), for comparing. */
function canonicalIp(address: string): string {
  return isIP(address) === 6 ? new URL(`http://[${address}]/`).hostname : address;
}

/** Of two instances on one address, the one to serve: routable first, then the latest registered, then the lower id. */
function preferred(a: InstanceRecord, b: InstanceRecord): InstanceRecord {
  const routableA = isRoutable(a);
  if (routableA !== isRoutable(b)) return routableA ? a : b;
  if (a.instance.registeredAtMs !== b.instance.registeredAtMs) return a.instance.registeredAtMs > b.instance.registeredAtMs ? a : b;
  return compareText(a.instance.instanceId, b.instance.instanceId) <= 0 ? a : b;
}

/**
 * EDS weights are integers: effective weights (fractional while warming up)
 * are sent ×100, so even a weight-1 instance's warm-up steps stay distinct.
 */
export const edsWeightScale = 100;

/** The integer EDS weight of an effective weight: ×{@link edsWeightScale}, rounded, at least 1. */
export function edsWeight(effective: number): number {
  return Math.max(1, Math.round(effective * edsWeightScale));
}

/**
 * The ClusterLoadAssignment `service` for `records` (the service's
 * instances), as a client in `clientRegion` should see it:
 * - one locality per instance (region, zone, and the instance id as
 *   sub-zone) with an explicit `load_balancing_weight`: gRPC clients pick a
 *   locality by weight and then round-robin inside it ignoring endpoint
 *   weights, so instance weights (effective weights, warm-up included) only
 *   reach them as locality weights; the endpoint carries the same weight for
 *   policies that read it;
 * - routable instances HEALTHY, the others UNHEALTHY (clients send traffic
 *   to HEALTHY and UNKNOWN only) with weight 1: listed, never picked;
 * - when `clientRegion` has a routable instance and other regions do too,
 *   the client's region gets priority 0 and the rest priority 1, so the
 *   client fails over across regions only when its own has none left;
 * - instances whose host is not an IP literal are left out and reported,
 *   and so are all but one of the instances sharing an address (either
 *   would make a client NACK the whole assignment): the one kept is
 *   routable if any is (a process restarted on its old address under a new
 *   id must not be hidden by its stale record), then the latest registered.
 * Localities are in instance_id order, so equal inputs give byte-identical
 * resources.
 */
export function buildLoadAssignment(
  service: string,
  records: readonly InstanceRecord[],
  clientRegion?: string,
): LoadAssignment {
  const skipped: SkippedEndpoint[] = [];
  const byAddress = new Map<string, { record: InstanceRecord; ip: { address: string; port: number } }>();
  for (const record of records) {
    const { instanceId, endpoint } = record.instance;
    const ip = ipEndpoint(endpoint);
    if (ip === undefined) {
      skipped.push({ instanceId, endpoint, reason: "not_ip" });
      continue;
    }
    const addressKey = `${canonicalIp(ip.address)}\n${ip.port}`;
    const held = byAddress.get(addressKey);
    if (held === undefined) byAddress.set(addressKey, { record, ip });
    else {
      const keep = preferred(held.record, record);
      const drop = keep === record ? held.record : record;
      if (keep === record) byAddress.set(addressKey, { record, ip });
      skipped.push({ instanceId: drop.instance.instanceId, endpoint: drop.instance.endpoint, reason: "duplicate_address" });
    }
  }
  skipped.sort((a, b) => compareText(a.instanceId, b.instanceId));
  const kept = [...byAddress.values()].sort((a, b) => compareText(a.record.instance.instanceId, b.record.instance.instanceId));
  const routableRegions = new Set(kept.filter(({ record }) => isRoutable(record)).map(({ record }) => record.instance.region));
  const prioritize =
    clientRegion !== undefined && routableRegions.has(clientRegion) && [...routableRegions].some((region) => region !== clientRegion);
  const endpoints = kept.map(({ record, ip }) => {
    const { instanceId, region, zone } = record.instance;
    const routable = isRoutable(record);
    const weight = routable ? edsWeight(effectiveWeight(record)) : 1;
    const endpoint: LbEndpoint = create(LbEndpointSchema, {
      hostIdentifier: {
        case: "endpoint",
        value: {
          address: { address: { case: "socketAddress", value: { address: ip.address, portSpecifier: { case: "portValue", value: ip.port } } } },
          hostname: instanceId,
        },
      },
      healthStatus: routable ? HealthStatus.HEALTHY : HealthStatus.UNHEALTHY,
      loadBalancingWeight: weight,
    });
    return create(LocalityLbEndpointsSchema, {
      locality: { region, zone, subZone: instanceId },
      lbEndpoints: [endpoint],
      loadBalancingWeight: weight,
      priority: prioritize && region !== clientRegion ? 1 : 0,
    });
  });
  return { assignment: create(ClusterLoadAssignmentSchema, { clusterName: service, endpoints }), skipped };
}
