import { setTimeout as sleep } from "node:timers/promises";
import { ConnectError } from "@connectrpc/connect";

/** What {@link runRevisionWatch} watches and how it reports. */
export interface RevisionWatchOptions<M> {
  /** Where to start: 0 for "from now" (the server's first message says where that is), N for every change after N. */
  readonly startRevision: bigint;
  /** Opens the stream of changes after `revision`; it must end (or throw) once `signal` aborts. */
  open(revision: bigint, signal: AbortSignal): AsyncIterable<M>;
  /**
   * Handles (prints) one message and returns the revision the watch has now
   * seen everything up to; `revision` is the one held before it.
   */
  onMessage(message: M, revision: bigint): bigint;
  /** Ends the watch. Default: the first SIGINT (Ctrl-C). */
  readonly signal?: AbortSignal;
  /** Prefix of the reconnect notices, e.g. `watch`. */
  readonly name: string;
  /** First reconnect delay, doubled after each failed attempt. Default 200 ms. */
  readonly initialBackoffMs?: number;
  /** Default 5000 ms. */
  readonly maxBackoffMs?: number;
  /** Receives reconnect notices (one line each). Default: stderr. */
  readonly notify?: (line: string) => void;
}

/**
 * Runs a revisioned watch until it is stopped, resuming after a dropped
 * connection from the last revision it saw, so that no change is missed or
 * printed twice — across reconnects and server restarts. This is the loop
 * behind `latticeforge registry watch` and `latticeforge trace
 * watch-anomalies`.
 *
 * Steps, repeated until `signal` aborts:
 * 1. open the stream from the revision held (the start revision at first);
 * 2. hand every message to `onMessage`, which advances the revision; a
 *    message resets the backoff (the connection is healthy again);
 * 3. when the stream fails — or ends, which a live watch never does unless
 *    the server goes away — write a notice naming the revision it will
 *    resume from, wait the backoff (interrupted by `signal`) and double it.
 *
 * Resolves to exit code 0 once stopped.
 *
 * @example
 * await runRevisionWatch({
 *   name: "watch",
 *   startRevision: 0n,
 *   open: (revision, signal) => client.watchAnomalies({ startRevision: revision }, { signal }),
 *   onMessage: (res, revision) => (res.message.case === "change" ? res.message.value.revision : revision),
 * });
 */
export async function runRevisionWatch<M>(options: RevisionWatchOptions<M>): Promise<number> {
  const initialBackoffMs = options.initialBackoffMs ?? 200;
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const notify = options.notify ?? ((line: string) => void process.stderr.write(line + "\n"));
  let signal = options.signal;
  let stopOnSigint: (() => void) | undefined;
  if (signal === undefined) {
    const controller = new AbortController();
    stopOnSigint = () => controller.abort();
    process.once("SIGINT", stopOnSigint);
    signal = controller.signal;
  }
  let revision = options.startRevision;
  let backoffMs = initialBackoffMs;
  try {
    while (!signal.aborted) {
      let problem = "stream ended";
      try {
        for await (const message of options.open(revision, signal)) {
          backoffMs = initialBackoffMs;
          revision = options.onMessage(message, revision);
        }
      } catch (error) {
        if (signal.aborted) break;
        problem = ConnectError.from(error).message;
      }
      if (signal.aborted) break;
      notify(`${options.name}: ${problem}; resuming from revision ${revision} in ${backoffMs} ms`);
      // Rejects with an AbortError when stopped: the loop condition then ends it.
      await sleep(backoffMs, undefined, { signal }).catch(() => undefined);
      backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
    }
  } finally {
    if (stopOnSigint !== undefined) process.off("SIGINT", stopOnSigint);
  }
  return 0;
}
