import type { Durability } from "../../../server/store/database.js";

/** Which server a host process runs; see the modules in `host-processes/`. */
export type HostSpec =
  | { readonly kind: "ceiling" }
  | { readonly kind: "adapter" }
  | {
      readonly kind: "control-plane";
      readonly durability: Durability;
      /** `--max-instances-per-service`; the server's default when absent. */
      readonly maxInstancesPerService?: number;
    }
  | {
      /** A real etcd started from `binary` (not a Node host; see `etcd-host.ts`). */
      readonly kind: "etcd";
      readonly binary: string;
    };

/** Host kinds that run as a forked Node process (`host-processes/`). */
export type NodeHostSpec = Exclude<HostSpec, { readonly kind: "etcd" }>;

/** A {@link NodeHostSpec} plus what the parent prepared for it; JSON in the host's argv[2]. */
export type HostLaunch = NodeHostSpec & {
  /** An empty temp directory owned by the parent (removed after the host exits). */
  readonly dir: string;
};

/** Host → parent: serving on 127.0.0.1:`grpcPort`. */
export interface ReadyMessage {
  readonly type: "ready";
  readonly grpcPort: number;
}

/** Parent → host: report {@link HostStats}. */
export interface StatsRequest {
  readonly type: "stats";
  /**
   * Run a full garbage collection first (hosts run with `--expose-gc`), so
   * that RSS shows what is retained rather than garbage not yet collected.
   */
  readonly gc?: boolean;
}

/** Host → parent: the host process's own resource use, for per-op CPU and RSS. */
export interface HostStats {
  readonly type: "host-stats";
  /** `process.cpuUsage()` since the host started, in microseconds. */
  readonly cpu: NodeJS.CpuUsage;
  /** Resident set size now, in bytes. */
  readonly rssBytes: number;
  /**
   * Garbage-collection pauses since the host started (as `gc` performance
   * entries report them), in milliseconds; NaN for a host that cannot tell
   * (etcd).
   */
  readonly gcMs: number;
}

/** Parent → host: shut the server down and exit. */
export interface StopRequest {
  readonly type: "stop";
}

/** Every message between the parent and a host. */
export type HostMessage = ReadyMessage | StatsRequest | HostStats | StopRequest;
