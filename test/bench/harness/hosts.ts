import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEtcdHost } from "./etcd-host.js";
import type { HostMessage, HostSpec, HostStats, NodeHostSpec } from "./host-protocol.js";
import { nextMessage } from "./ipc.js";
import { forkChild, reapChild } from "./processes.js";

/** The compiled module of each Node host kind. */
const hostModules: Record<NodeHostSpec["kind"], URL> = {
  ceiling: new URL("./host-processes/ceiling-host.js", import.meta.url),
  adapter: new URL("./host-processes/adapter-host.js", import.meta.url),
  "control-plane": new URL("./host-processes/control-plane-host.js", import.meta.url),
};

/**
 * V8 flags of every host. Under closed-loop load a grpc-js server (the bare
 * ceiling included) switches, at its first mark-compact under load, into a
 * state where every scavenge promotes ~2 MB and GC costs 10–15 µs per call.
 * A small host (the ceiling) gets there within a second; a host with a larger
 * startup heap only after 10–20 s, so without this the ceiling and a target
 * would be measured in different states. A large initial old space keeps
 * mark-compacts out of the measured window of every host alike.
 * `--expose-gc` lets a stats request collect first (see `StatsRequest.gc`);
 * it costs nothing until then. The young generation keeps Node's default,
 * as the server does (see the README's "Heap" note).
 */
export const hostV8Flags: readonly string[] = ["--initial-old-space-size=512", "--expose-gc"];

/** Temp directories of hosts (and pipelines) that have not been stopped yet. */
const liveDirs = new Set<string>();

const startTimeoutMs = 20_000;
const statsTimeoutMs = 5_000;
const stopTimeoutMs = 10_000;

/** A server under test running in its own process. */
export interface Host {
  /** `127.0.0.1:port` of its gRPC port. */
  readonly address: string;
  /**
   * The host process's CPU time, RSS and GC pause time now; with `gc`, after
   * a full collection (Node hosts only; etcd ignores it).
   */
  stats(options?: { readonly gc?: boolean }): Promise<HostStats>;
  /** Asks for a graceful stop, kills the process if it takes too long, removes its temp directory. */
  stop(): Promise<void>;
}

/**
 * A fresh temp directory for a measured process, removed by `remove()` or,
 * should the bench end first, by {@link removeHostDirs}.
 *
 * @param kind names the directory, e.g. `control-plane`
 */
export function createHostDir(kind: string): { readonly path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `latticeforge-bench-${kind}-`));
  liveDirs.add(path);
  return {
    path,
    remove: () => {
      rmSync(path, { recursive: true, force: true });
      liveDirs.delete(path);
    },
  };
}

/**
 * Starts the server of `spec` — a forked Node host process, or etcd — and
 * resolves once it serves. Each host gets a fresh temp directory, removed
 * when it stops.
 *
 * @param execArgv Node flags of a Node host process besides the common V8 heap flags, e.g. `--cpu-prof`
 */
export async function startHost(spec: HostSpec, execArgv: readonly string[]): Promise<Host> {
  const dir = createHostDir(spec.kind);
  try {
    const host = spec.kind === "etcd" ? await startEtcdHost(spec.binary, dir.path) : await forkHost(spec, dir.path, execArgv);
    return {
      ...host,
      stop: async () => {
        await host.stop();
        dir.remove();
      },
    };
  } catch (error) {
    dir.remove();
    throw error;
  }
}

/** Forks the Node host process of `spec`; it is gone again if this rejects. */
async function forkHost(spec: NodeHostSpec, dir: string, execArgv: readonly string[]): Promise<Host> {
  const child = forkChild(hostModules[spec.kind], [JSON.stringify({ ...spec, dir })], [...hostV8Flags, ...execArgv]);
  const stop = async (): Promise<void> => {
    if (child.connected) child.send({ type: "stop" } satisfies HostMessage);
    await reapChild(child, stopTimeoutMs);
  };
  try {
    const ready = await nextMessage<HostMessage, "ready">(child, "ready", startTimeoutMs, `${spec.kind} host start`);
    return {
      address: `127.0.0.1:${ready.grpcPort}`,
      stats: (options) => {
        const answer = nextMessage<HostMessage, "host-stats">(child, "host-stats", statsTimeoutMs, `${spec.kind} host stats`);
        child.send({ type: "stats", ...(options?.gc === true ? { gc: true } : {}) } satisfies HostMessage);
        return answer;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Removes the temp directories of hosts that were never stopped (synchronous,
 * for a process `exit` handler, once `killChildren` has ended the hosts).
 */
export function removeHostDirs(): void {
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}
