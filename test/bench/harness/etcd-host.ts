/**
 * etcd as a bench host: the peer the registry bench compares LatticeForge
 * with. Unlike the Node hosts it is not forked from `host-processes/`: the
 * parent spawns the etcd binary itself (tracked by `processes.ts`, so it dies
 * with the bench), on 127.0.0.1 with free ports and a data dir in the host's
 * temp directory, and reads its CPU time and RSS from `/proc/<pid>`.
 */
import { execFileSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GrpcConnection } from "../../../client/grpc-client.js";
import { KV } from "../gen/etcdserverpb/rpc_pb.js";
import type { HostStats } from "./host-protocol.js";
import type { Host } from "./hosts.js";
import { reapChild, spawnChild } from "./processes.js";

/**
 * etcd's backend quota (its suggested maximum, 8 GiB): the default 2 GiB
 * would raise NOSPACE alarms on a long register run, as the bench never
 * compacts.
 */
const quotaBackendBytes = 8 * 1024 * 1024 * 1024;
const startTimeoutMs = 20_000;
const stopTimeoutMs = 10_000;
/** Most of etcd's stderr kept for an error message. */
const stderrTailChars = 4_000;

/**
 * The etcd executable to compare with: `explicit` when given (it must be
 * executable), else the first `etcd` on PATH, else `/usr/bin/etcd` (Debian's
 * `etcd-server`); undefined when there is none.
 */
export function findEtcd(explicit?: string): string | undefined {
  if (explicit !== undefined) {
    if (!isExecutable(explicit)) throw new Error(`--etcd ${explicit} is not an executable file`);
    return explicit;
  }
  const candidates = [...(process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== "").map((dir) => join(dir, "etcd")), "/usr/bin/etcd"];
  return candidates.find(isExecutable);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a single-member etcd with its data in `dir` and resolves once it
 * answers a range request. etcd fsyncs its WAL before acknowledging a write,
 * as LatticeForge does with `--durability full`.
 */
export async function startEtcdHost(binary: string, dir: string): Promise<Host> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const child = spawnChild(binary, [
    "--name=bench",
    `--data-dir=${join(dir, "etcd")}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=bench=${peerUrl}`,
    "--initial-cluster-state=new",
    `--quota-backend-bytes=${quotaBackendBytes}`,
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=error",
  ]);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (text: string) => {
    stderr = (stderr + text).slice(-stderrTailChars);
  });
  let spawnError: Error | undefined;
  child.once("error", (error) => {
    spawnError = error;
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await reapChild(child, stopTimeoutMs);
  };
  const address = `127.0.0.1:${clientPort}`;
  try {
    await waitUntilServing(address, () => spawnError ?? (child.exitCode !== null ? new Error(`etcd exited (${child.exitCode})`) : undefined));
  } catch (error) {
    await stop();
    throw new Error(`etcd at ${binary} did not start: ${(error as Error).message}\n${stderr}`);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error("etcd has no pid");
  return {
    address,
    stats: () => Promise.resolve(procStats(pid)),
    stop,
  };
}

async function waitUntilServing(address: string, failed: () => Error | undefined): Promise<void> {
  const connection = new GrpcConnection({ address });
  const kv = connection.client(KV);
  const deadline = Date.now() + startTimeoutMs;
  try {
    for (;;) {
      const failure = failed();
      if (failure !== undefined) throw failure;
      try {
        await kv.range({ key: new TextEncoder().encode("bench-ready") }, { timeoutMs: 1_000 });
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`no answer within ${startTimeoutMs} ms: ${(error as Error).message}`);
        await sleep(100);
      }
    }
  } finally {
    connection.close();
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const bound = server.address();
      const port = typeof bound === "object" && bound !== null ? bound.port : 0;
      server.close(() => resolve(port));
    });
  });
}

let clockTicksPerSecond: number | undefined;

/** `sysconf(_SC_CLK_TCK)`, the unit of `/proc/<pid>/stat` CPU times. */
function ticksPerSecond(): number {
  if (clockTicksPerSecond === undefined) {
    let ticks = Number.NaN;
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    } catch {
      // Linux has used 100 on every mainstream architecture for decades.
    }
    clockTicksPerSecond = Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
  }
  return clockTicksPerSecond;
}

/**
 * etcd's CPU time (user and system, all threads; clock-tick resolution) and
 * RSS from `/proc`, shaped as a Node host's stats. Go cannot be told to
 * collect from outside, so GC time is NaN and a `gc` request is ignored.
 */
function procStats(pid: number): HostStats {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name, starting at field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const toMicros = (field: string | undefined): number => (Number(field) * 1e6) / ticksPerSecond();
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKiB = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  if (rssKiB === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return {
    type: "host-stats",
    // utime and stime are fields 14 and 15.
    cpu: { user: toMicros(fields[14 - 3]), system: toMicros(fields[15 - 3]) },
    rssBytes: Number(rssKiB) * 1024,
    gcMs: Number.NaN,
  };
}
