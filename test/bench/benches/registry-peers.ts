/**
 * What the registry bench does from its own process against each of the two
 * servers it compares: fill the resolve workload's service before the load
 * starts, and write the changes the watch fan-out delivers. LatticeForge is
 * called through `client/grpc-client.ts`, etcd through the same class with
 * the bench's subset of etcd's API: one client stack for both.
 */
import { GrpcConnection } from "../../../client/grpc-client.js";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { KV } from "../gen/etcdserverpb/rpc_pb.js";
import type { FanOutWriter } from "../harness/watch-runner.js";
import { etcdPut, instanceRecord, resolveInstances, resolveService } from "../scenarios/registry-records.js";

const callTimeoutMs = 10_000;
const connectTimeoutMs = 5_000;
/** Writer number of the records the bench process itself writes (load clients are 0, 1, …). */
const benchWriter = 999;

function resolveRecords() {
  return Array.from({ length: resolveInstances }, (_, i) => instanceRecord(benchWriter, i, resolveService));
}

/** Registers the resolve workload's {@link resolveInstances} instances in one BulkRegister. */
export async function registerResolveInstances(address: string): Promise<void> {
  const connection = new GrpcConnection({ address });
  try {
    const registry = connection.client(RegistryService);
    const { results } = await registry.bulkRegister({ instances: resolveRecords(), failFast: true }, { timeoutMs: callTimeoutMs });
    const failed = results.find((result) => !result.registered);
    if (failed !== undefined) throw new Error(`BulkRegister of ${failed.instanceId} failed: ${failed.error}`);
  } finally {
    connection.close();
  }
}

/** PUTs the same {@link resolveInstances} records into etcd. */
export async function putResolveInstances(address: string): Promise<void> {
  const connection = new GrpcConnection({ address });
  try {
    const kv = connection.client(KV);
    await Promise.all(resolveRecords().map((record) => kv.put(etcdPut(record), { timeoutMs: callTimeoutMs })));
  } finally {
    connection.close();
  }
}

/** Writes the watch fan-out's changes to LatticeForge: one Register of a new instance each. */
export async function registryWriter(address: string): Promise<FanOutWriter> {
  const connection = new GrpcConnection({ address });
  await connection.waitForReady(connectTimeoutMs);
  const registry = connection.client(RegistryService);
  return {
    write: async (sequence) => {
      const { revision } = await registry.register({ instance: instanceRecord(benchWriter, sequence) }, { timeoutMs: callTimeoutMs });
      return Number(revision);
    },
    close: () => connection.close(),
  };
}

/** Writes the watch fan-out's changes to etcd: one PUT of a new record each. */
export async function etcdWriter(address: string): Promise<FanOutWriter> {
  const connection = new GrpcConnection({ address });
  await connection.waitForReady(connectTimeoutMs);
  const kv = connection.client(KV);
  return {
    write: async (sequence) => {
      const { header } = await kv.put(etcdPut(instanceRecord(benchWriter, sequence)), { timeoutMs: callTimeoutMs });
      if (header === undefined) throw new Error("etcd answered a PUT without a header");
      return Number(header.revision);
    },
    close: () => connection.close(),
  };
}
