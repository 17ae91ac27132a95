import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  TopologyEventType,
  type InstanceState,
  type RegistryService,
  type TopologyChange,
} from "../gen/latticeforge/registry/v1/registry_pb.js";

/** Options for {@link TopologyWatcher}. */
export interface TopologyWatcherOptions {
  /** Only these services; empty or omitted for all. */
  readonly serviceNames?: readonly string[];
  /** Called after every applied snapshot or change, with the revision now held. */
  readonly onUpdate?: (revision: bigint) => void;
  /** Called when the stream fails and the watcher is about to reconnect. */
  readonly onError?: (error: ConnectError) => void;
  /** First reconnect delay; doubles up to `maxBackoffMs`. Default 100 ms. */
  readonly initialBackoffMs?: number;
  /** Default 5 s. */
  readonly maxBackoffMs?: number;
}

/**
 * A local, always-consistent copy of the registry's topology, kept by
 * WatchTopology: the first snapshot, then every change, and after a dropped
 * connection (or a server restart) a resume from the last revision seen, so
 * nothing is missed or applied twice. A reset snapshot (the server compacted
 * the history past our revision) replaces the copy wholesale.
 *
 * This is what a proxy embeds to route from the registry without a call per
 * request.
 *
 * @example
 * const watcher = new TopologyWatcher(conn.client(RegistryService), { serviceNames: ["checkout"] });
 * await watcher.ready;
 * const endpoints = watcher.instances("checkout").map((s) => s.instance?.endpoint);
 * watcher.close();
 */
export class TopologyWatcher {
  /** Resolves once the first snapshot has been applied. */
  readonly ready: Promise<void>;
  private readonly byId = new Map<string, InstanceState>();
  private currentRevision = 0n;
  private readonly controller = new AbortController();
  private markReady!: () => void;
  private failReady!: (error: ConnectError) => void;

  constructor(
    private readonly client: Client<typeof RegistryService>,
    private readonly options: TopologyWatcherOptions = {},
  ) {
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    // Callers that never await `ready` must not see an unhandled rejection.
    this.ready.catch(() => undefined);
    void this.run();
  }

  /** The last revision applied (0 before the first snapshot). */
  get revision(): bigint {
    return this.currentRevision;
  }

  /** The instances held now, of one service or all, sorted by instance_id. */
  instances(serviceName?: string): InstanceState[] {
    const all = [...this.byId.values()].filter((s) => serviceName === undefined || s.instance?.serviceName === serviceName);
    return all.sort((a, b) => (a.instance!.instanceId < b.instance!.instanceId ? -1 : 1));
  }

  /** Stops watching; `ready` rejects if the first snapshot had not arrived. */
  close(): void {
    this.controller.abort();
    this.failReady(new ConnectError("topology watcher closed before the first snapshot", Code.Canceled));
  }

  private async run(): Promise<void> {
    const { signal } = this.controller;
    const initialBackoff = this.options.initialBackoffMs ?? 100;
    let backoff = initialBackoff;
    while (!signal.aborted) {
      let pending: Map<string, InstanceState> | undefined;
      try {
        const stream = this.client.watchTopology(
          { serviceNames: [...(this.options.serviceNames ?? [])], startRevision: this.currentRevision },
          { signal },
        );
        for await (const response of stream) {
          backoff = initialBackoff;
          const message = response.message;
          if (message.case === "snapshot") {
            // A large snapshot arrives in several messages; it replaces the
            // copy only once complete, so readers never see half of it.
            pending ??= new Map();
            for (const state of message.value.instances) pending.set(state.instance!.instanceId, state);
            if (message.value.more) continue;
            this.byId.clear();
            for (const [id, state] of pending) this.byId.set(id, state);
            pending = undefined;
            this.currentRevision = message.value.revision;
            this.markReady();
          } else if (message.case === "change") {
            this.apply(message.value);
          } else if (message.case === "progress") {
            if (message.value.revision > this.currentRevision) this.currentRevision = message.value.revision;
          } else continue;
          this.options.onUpdate?.(this.currentRevision);
        }
      } catch (error) {
        if (signal.aborted) return;
        this.options.onError?.(ConnectError.from(error));
      }
      if (signal.aborted) return;
      // A stream that ended without error is treated like a dropped one.
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        const timer = setTimeout(wake, backoff);
        signal.addEventListener("abort", wake, { once: true });
      });
      backoff = Math.min(backoff * 2, this.options.maxBackoffMs ?? 5000);
    }
  }

  private apply(change: TopologyChange): void {
    if (change.revision <= this.currentRevision) {
      throw new ConnectError(`topology change ${change.revision} is not after ${this.currentRevision}`, Code.DataLoss);
    }
    for (const event of change.events) {
      const state = event.instance!;
      const id = state.instance!.instanceId;
      if (event.type === TopologyEventType.REMOVED) this.byId.delete(id);
      else this.byId.set(id, state);
    }
    this.currentRevision = change.revision;
  }
}
