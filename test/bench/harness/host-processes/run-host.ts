import { PerformanceObserver } from "node:perf_hooks";
import { nextMessage, runChild, sendToParent } from "../ipc.js";
import type { HostLaunch, HostMessage } from "../host-protocol.js";

/** A server started by a host process. */
export interface HostedServer {
  /** Bound gRPC port on 127.0.0.1. */
  readonly grpcPort: number;
  /** Graceful shutdown; the parent kills the host if this takes too long. */
  stop(): Promise<void>;
}

/** The parent bounds every host's life; this only ends a host the parent forgot. */
const parentTimeoutMs = 3_600_000;
/** Long enough for `gc` performance entries to reach the observer after a forced collection. */
const gcReportDelayMs = 20;

/**
 * The main of a host process: starts the server with the launch options from
 * argv[2], announces its port, answers `stats` with the process's own CPU
 * time, RSS and GC pauses until `stop`, then shuts the server down and exits.
 */
export function runHost(start: (launch: HostLaunch) => Promise<HostedServer>): void {
  runChild(async () => {
    const launch = JSON.parse(process.argv[2] ?? "") as HostLaunch;
    // Every host observes its GC pauses the same way, so the observer's own
    // cost is alike on both sides of a ratio.
    let gcMs = 0;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) gcMs += entry.duration;
    }).observe({ entryTypes: ["gc"] });
    const server = await start(launch);
    const reply = (): void => {
      void sendToParent({ type: "host-stats", cpu: process.cpuUsage(), rssBytes: process.memoryUsage.rss(), gcMs } satisfies HostMessage);
    };
    const onStats = (message: HostMessage): void => {
      if (message.type !== "stats") return;
      if (message.gc !== true) return reply();
      runFullGc();
      // The observer hears of the collection a few immediates later; answer
      // once it has, so its pause counts before the sample, not after it.
      setTimeout(reply, gcReportDelayMs);
    };
    process.on("message", onStats);
    const stopped = nextMessage<HostMessage, "stop">(process, "stop", parentTimeoutMs, "waiting for stop");
    await sendToParent({ type: "ready", grpcPort: server.grpcPort } satisfies HostMessage);
    await stopped;
    process.off("message", onStats);
    await server.stop();
    process.exit(0);
  });
}

/** A full, synchronous collection; hosts run with `--expose-gc` (see `hostV8Flags`). */
function runFullGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("stats with gc asked of a host started without --expose-gc");
  gc();
}
