/**
 * The HTTP shadow a Dispatch target sends to: a keep-alive `node:http`
 * server answering every request with a fixed JSON body, in a process of its
 * own (`shadow-process.ts`), so that its CPU time is not the control plane's.
 * It counts what it served and reports its CPU time, to show what a shadow
 * request costs the receiving side.
 */
import { nextMessage } from "./ipc.js";
import { forkChild, reapChild } from "./processes.js";

const shadowModule = new URL("./shadow-process.js", import.meta.url);

const startTimeoutMs = 10_000;
const statsTimeoutMs = 5_000;
const stopTimeoutMs = 5_000;

/** Shadow → parent: listening on 127.0.0.1:`port`. */
export interface ShadowReadyMessage {
  readonly type: "ready";
  readonly port: number;
}

/** Parent → shadow: report {@link ShadowStats}. */
export interface ShadowStatsRequest {
  readonly type: "stats";
}

/** Shadow → parent: requests served since the start and the process's CPU time. */
export interface ShadowStats {
  readonly type: "shadow-stats";
  /** Requests answered (200 with the JSON body). */
  readonly served: number;
  /** `process.cpuUsage()` since the shadow started, in microseconds. */
  readonly cpu: NodeJS.CpuUsage;
}

/** Parent → shadow: close the server and exit. */
export interface ShadowStopRequest {
  readonly type: "stop";
}

/** Every message between the parent and the shadow process. */
export type ShadowMessage = ShadowReadyMessage | ShadowStatsRequest | ShadowStats | ShadowStopRequest;

/** A running shadow server. */
export interface ShadowHost {
  /** `http://127.0.0.1:port`, a mirror's `shadow_endpoint`. */
  readonly endpoint: string;
  stats(): Promise<ShadowStats>;
  /** Stops the process (killed if it takes too long); resolves once it is gone. */
  stop(): Promise<void>;
}

/**
 * Forks a shadow server and resolves once it listens.
 *
 * @param body the JSON value every request is answered with
 */
export async function startShadowHost(body: unknown): Promise<ShadowHost> {
  const child = forkChild(shadowModule, [JSON.stringify(body)]);
  const stop = async (): Promise<void> => {
    if (child.connected) child.send({ type: "stop" } satisfies ShadowMessage);
    await reapChild(child, stopTimeoutMs);
  };
  try {
    const { port } = await nextMessage<ShadowMessage, "ready">(child, "ready", startTimeoutMs, "shadow start");
    return {
      endpoint: `http://127.0.0.1:${port}`,
      stats: () => {
        const answer = nextMessage<ShadowMessage, "shadow-stats">(child, "shadow-stats", statsTimeoutMs, "shadow stats");
        child.send({ type: "stats" } satisfies ShadowMessage);
        return answer;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
