import type { Client } from "@grpc/grpc-js";

/** Where one watch reports what it receives (see {@link WatchScenario}). */
export interface WatchSink {
  /** The server holds the watch: its first message (a snapshot, etcd's `created`) arrived. */
  ready(): void;
  /** A change of `revision` arrived (once per revision the message carries). */
  delivered(revision: number): void;
  /** The watch failed or ended on its own. */
  failed(error: Error): void;
}

/**
 * What a watch client process holds open: how to open one watch on a grpc-js
 * channel and read the revisions of what arrives. Like a `LoadScenario`, it
 * lives in its own module whose default export is the scenario, loaded by URL
 * in the watch client process.
 *
 * @example
 * const scenario: WatchScenario = {
 *   open(channel, sink) {
 *     const call = channel.makeServerStreamRequest(path, serialize, decodeRevision, request);
 *     call.on("data", (m: Revision) => (m.first ? sink.ready() : sink.delivered(m.revision)));
 *     call.on("error", (error: Error) => sink.failed(error));
 *     return () => call.cancel();
 *   },
 * };
 * export default scenario;
 */
export interface WatchScenario {
  /**
   * Opens watch number `stream` (0-based over every client process of the
   * run) on `channel`; returns the function that cancels it.
   */
  open(channel: Client, sink: WatchSink, stream: number): () => void;
  /**
   * Whether watch `stream` is to receive write number `write` (0-based, in
   * send order); absent: every watch receives every write. Lets a scenario
   * subscribe each watch to a part of what is written (xDS streams to one
   * service each).
   */
  sees?(stream: number, write: number): boolean;
}

/** Loads the scenario exported as default by the compiled module at `url`. */
export async function loadWatchScenario(url: string): Promise<WatchScenario> {
  const module = (await import(url)) as { default?: Partial<WatchScenario> };
  const scenario = module.default;
  if (typeof scenario?.open !== "function") throw new Error(`${url} has no default export shaped as a WatchScenario`);
  return scenario as WatchScenario;
}
