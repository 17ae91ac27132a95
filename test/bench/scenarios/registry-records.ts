/**
 * The instance records of the registry bench, the same for LatticeForge and
 * etcd: ~300 bytes each (the size of the "instance record"), as an
 * instance registers itself — a realistic instance id, one of
 * {@link serviceCount} services, an endpoint, region and zone, a weight and a
 * few metadata entries. etcd stores the same fields as a JSON value under
 * `/registry/<service>/<instance id>`.
 */
import { create } from "@bufbuild/protobuf";
import { ServiceInstanceSchema, type ServiceInstance } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { PutRequestSchema, type PutRequest } from "../gen/etcdserverpb/rpc_pb.js";

/** Services the writes spread over. */
export const serviceCount = 100;
/** The service the resolve workload reads, with {@link resolveInstances} instances and nothing else in it. */
export const resolveService = "catalog-resolve";
/** Instances of {@link resolveService}. */
export const resolveInstances = 100;
/** etcd's key prefix of every record. */
export const etcdRoot = "/registry/";

const stems = ["checkout", "payments", "inventory", "catalog", "search", "accounts", "shipping", "pricing", "reviews", "ledger"];
const regions = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"];
const encoder = new TextEncoder();

/** Service number `index` (0-based) of {@link serviceCount}: `checkout-api-0`, `payments-api-1`, … */
export function serviceName(index: number): string {
  return `${stems[index % stems.length] as string}-api-${Math.floor(index / stems.length)}`;
}

/**
 * Record `sequence` of writer `client`, in `service` (by default spread over
 * the {@link serviceCount} services): unique per (client, sequence).
 */
export function instanceRecord(client: number, sequence: number, service = serviceName(sequence % serviceCount)): ServiceInstance {
  const hash = (Math.imul(sequence + 1, 2654435761) ^ Math.imul(client + 1, 40503)) >>> 0;
  const tag = hash.toString(16).padStart(8, "0");
  const region = regions[sequence % regions.length] as string;
  const octets = `${client % 250}.${(sequence >>> 8) & 255}.${sequence & 255}`;
  return create(ServiceInstanceSchema, {
    instanceId: `${service}-${tag}-c${client}-${sequence}`,
    serviceName: service,
    endpoint: `10.${octets}:8443`,
    region,
    zone: `${region}${"abc"[hash % 3] as string}`,
    weight: 1 + (hash % 100),
    metadata: {
      version: "2.14.3",
      pod: `${service}-7d9f8b6c5-${tag.slice(0, 5)}`,
      node: `ip-10-${octets.replaceAll(".", "-")}.ec2.internal`,
      protocol: "grpc",
      commit: "3f9a2c1e7b",
    },
  });
}

/** etcd's PUT of `instance`: its JSON (with the registration time the client stamps) under `/registry/<service>/<id>`. */
export function etcdPut(instance: ServiceInstance): PutRequest {
  const value = {
    instance_id: instance.instanceId,
    service_name: instance.serviceName,
    endpoint: instance.endpoint,
    region: instance.region,
    zone: instance.zone,
    weight: instance.weight,
    metadata: instance.metadata,
    registered_at: Date.now(),
  };
  return create(PutRequestSchema, {
    key: encoder.encode(`${etcdRoot}${instance.serviceName}/${instance.instanceId}`),
    value: encoder.encode(JSON.stringify(value)),
  });
}

/** The `[key, range_end)` of every key under `prefix`, as etcd's prefix reads spell it. */
export function etcdPrefixRange(prefix: string): { key: Uint8Array; rangeEnd: Uint8Array } {
  const key = encoder.encode(prefix);
  const rangeEnd = key.slice();
  rangeEnd[rangeEnd.length - 1] = (rangeEnd[rangeEnd.length - 1] as number) + 1;
  return { key, rangeEnd };
}
