import { Worker } from "node:worker_threads";
import { UnavailableError } from "../core/errors.js";
import type { Logger } from "../observability/logger.js";
import type { RequestDecoder } from "../rpc/offloaded-decoding.js";
import type { ChunkResult } from "../rpc/offloaded-streams.js";
import { inlineDecoder } from "../rpc/offload-specs.js";
import { fromWireError, workerReady, type DecodeReply, type DecodeTask, type WireChunkResult } from "./decode-wire.js";

/** `Omit` over each member of a union. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Options of a {@link DecodePool}. */
export interface DecodePoolOptions {
  /** Worker threads; at least 1. */
  readonly workers: number;
  /**
   * Requests (and chunks of stream messages) smaller than this many bytes
   * are decoded inline: a worker's round trip (~0.1 ms) costs more than
   * decoding them. Default 16 KiB.
   */
  readonly inlineBelowBytes?: number;
  /**
   * A task not answered within this many ms means the worker is stuck: it
   * is stopped (its tasks fail) and replaced. Default 30 s; decoding the
   * largest request takes well under a second.
   */
  readonly taskTimeoutMs?: number;
  readonly logger: Logger;
  /** The worker's module; default the compiled `decode-worker.js`. Tests substitute their own. */
  readonly workerUrl?: URL;
}

/**
 * The compiled worker. From the TypeScript sources (the tests), that is the
 * build in `dist/`, which the test setup compiles before any test runs.
 */
const compiledWorkerUrl = import.meta.url.endsWith(".ts")
  ? new URL("../../dist/server/transport/decode-worker.js", import.meta.url)
  : new URL("./decode-worker.js", import.meta.url);

/**
 * Stream chunks of this many messages go to a worker however small: a
 * message costs ~20 µs to check inline whatever its size, and handing
 * four of them over costs the event loop less than that.
 */
export const offloadChunksFrom = 4;

/** First delay before restarting a worker that died without answering, doubled per failure in a row. */
const firstRestartDelayMs = 100;
const maxRestartDelayMs = 10_000;

/**
 * Worker threads that decode and prepare offloadable requests (see
 * `OffloadSpec`) and chunks of client-stream messages (`StreamOffloadSpec`),
 * so the event loop does not spend ~12 ms per 1,000-span batch, or ~20 µs
 * per streamed capture, on protobuf decoding and validation.
 *
 * Invariants:
 * - A task goes to the live worker with the fewest tasks in flight; each
 *   worker answers its tasks in order. Small requests, and every request
 *   while no worker is live, are decoded inline by the same code.
 * - The request bytes (a chunk's messages together) are copied once into a
 *   buffer of their own, which is transferred (grpc-js may hold the
 *   original).
 * - A worker that dies (it should not: `prepare` is pure and its errors are
 *   answered) or does not answer a task within `taskTimeoutMs` fails its
 *   tasks in flight with an error that maps to INTERNAL, is logged with its
 *   cause, and is replaced: at once if it had started, otherwise
 *   after a delay doubling from 100 ms to 10 s, so a worker that cannot
 *   start does not spin.
 * - After {@link close}, every task in flight and every new one fails with
 *   UNAVAILABLE. Workers and timers are unreferenced: they never keep the
 *   process up.
 */
export class DecodePool implements RequestDecoder {
  /** One slot per worker; empty while a failed worker waits to be restarted. */
  private readonly slots: (DecodeWorker | undefined)[];
  private readonly inlineBelowBytes: number;
  private readonly taskTimeoutMs: number;
  private readonly logger: Logger;
  private readonly workerUrl: URL;
  private closed = false;
  private inline = 0;
  private offloaded = 0;
  /** Workers in a row that failed before they had started. */
  private startFailures = 0;

  constructor(options: DecodePoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) throw new RangeError(`workers must be a positive integer, got ${options.workers}`);
    this.inlineBelowBytes = options.inlineBelowBytes ?? 16 * 1024;
    this.taskTimeoutMs = options.taskTimeoutMs ?? 30_000;
    this.logger = options.logger;
    this.workerUrl = options.workerUrl ?? compiledWorkerUrl;
    this.slots = Array.from({ length: options.workers }, () => undefined);
    for (let slot = 0; slot < options.workers; slot++) this.start(slot);
  }

  /**
   * Resolves once every worker has loaded (or failed to), so a server can
   * count their memory as part of its start, not of its first requests.
   */
  ready(): Promise<void> {
    return Promise.all(this.slots.map((worker) => worker?.started)).then(() => undefined);
  }

  /** Requests decoded so far: inline (small ones, or while no worker was live) or in a worker. */
  get counts(): { readonly inline: number; readonly worker: number } {
    return { inline: this.inline, worker: this.offloaded };
  }

  /** Requests the workers are decoding now. */
  get inFlight(): number {
    let total = 0;
    for (const worker of this.slots) total += worker?.inFlight ?? 0;
    return total;
  }

  /** Decodes and prepares `bytes` for the unary spec at `path`, in a worker unless they are small. */
  decode(path: string, bytes: Uint8Array): Promise<unknown> {
    if (this.closed) return Promise.reject(new UnavailableError("server shutting down"));
    const worker = this.workerFor(bytes.byteLength >= this.inlineBelowBytes);
    if (worker === undefined) return inlineDecoder.decode(path, bytes);
    const own = new Uint8Array(bytes);
    return worker.run({ path, bytes: own }, own.buffer, this.taskTimeoutMs);
  }

  /**
   * Decodes and prepares a chunk of stream messages for the stream spec at
   * `path`, in a worker when it has {@link offloadChunksFrom} messages or is
   * large; the messages are copied into one transferred buffer.
   */
  decodeChunk(path: string, messages: readonly Uint8Array[], firstIndex: number, context: unknown): Promise<ChunkResult> {
    if (this.closed) return Promise.reject(new UnavailableError("server shutting down"));
    let total = 0;
    for (const message of messages) total += message.byteLength;
    const worker = this.workerFor(messages.length >= offloadChunksFrom || total >= this.inlineBelowBytes);
    if (worker === undefined) return inlineDecoder.decodeChunk(path, messages, firstIndex, context);
    const packed = new Uint8Array(total);
    let at = 0;
    const views = messages.map((message) => {
      packed.set(message, at);
      at += message.byteLength;
      return packed.subarray(at - message.byteLength, at);
    });
    return worker.run({ path, chunk: { messages: views, firstIndex, context } }, packed.buffer, this.taskTimeoutMs).then((value) => {
      const { prepared, failure } = value as WireChunkResult;
      return failure === undefined ? { prepared } : { prepared, failure: fromWireError(failure) };
    });
  }

  /** Stops the workers; what they were decoding fails with UNAVAILABLE. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const workers = this.slots.filter((worker) => worker !== undefined);
    this.slots.fill(undefined);
    await Promise.all(workers.map((worker) => worker.terminate(new UnavailableError("server shutting down"))));
  }

  /**
   * The live worker with the fewest tasks, for a task worth offloading; or
   * undefined to decode it inline (counted either way).
   */
  private workerFor(worthOffloading: boolean): DecodeWorker | undefined {
    let least: DecodeWorker | undefined;
    if (worthOffloading) {
      for (const worker of this.slots) if (worker !== undefined && (least === undefined || worker.inFlight < least.inFlight)) least = worker;
    }
    if (least === undefined) this.inline++;
    else this.offloaded++;
    return least;
  }

  private start(slot: number): void {
    const worker = new DecodeWorker(this.workerUrl, (failure) => {
      if (this.closed || this.slots[slot] !== worker) return;
      this.slots[slot] = undefined;
      this.startFailures = failure.hadStarted ? 0 : this.startFailures + 1;
      const delayMs = this.startFailures === 0 ? 0 : Math.min(firstRestartDelayMs * 2 ** (this.startFailures - 1), maxRestartDelayMs);
      this.logger.error({ err: failure.cause, inFlight: failure.inFlight, restartInMs: delayMs }, "decode worker failed; starting another");
      setTimeout(() => {
        if (!this.closed) this.start(slot);
      }, delayMs).unref();
    });
    this.slots[slot] = worker;
  }
}

/** Why a worker stopped serving, for its pool. */
interface WorkerFailure {
  readonly cause: Error;
  /** Tasks it failed. */
  readonly inFlight: number;
  /** It had loaded and taken tasks before it failed. */
  readonly hadStarted: boolean;
}

/** One worker thread and its tasks in flight. */
class DecodeWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void; timer: NodeJS.Timeout }>();
  private nextId = 0;
  private hasStarted = false;
  /** Resolves when the worker posts that it is ready, or when it fails first. */
  readonly started: Promise<void>;
  private markStarted!: () => void;
  /** Set once the worker stops serving (failed or terminated); later tasks fail at once. */
  private stopped = false;
  private lastError: Error | undefined;

  constructor(url: URL, private readonly onFailure: (failure: WorkerFailure) => void) {
    this.started = new Promise((resolve) => (this.markStarted = resolve));
    this.worker = new Worker(url);
    this.worker.unref();
    this.worker.on("message", (reply: DecodeReply | typeof workerReady) => {
      if (reply === workerReady) {
        this.hasStarted = true;
        this.markStarted();
        return;
      }
      const task = this.pending.get(reply.id);
      if (task === undefined) return;
      this.pending.delete(reply.id);
      clearTimeout(task.timer);
      if (reply.ok) task.resolve(reply.value);
      else task.reject(fromWireError(reply.error));
    });
    // An 'error' event (an exception the worker did not catch, or a module
    // that failed to load) is always followed by 'exit'.
    this.worker.on("error", (error) => {
      this.lastError = error;
    });
    this.worker.on("exit", (code) => this.fail(this.lastError ?? new Error(`decode worker exited with code ${code}`)));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Runs a task whose bytes all live in `buffer`, which is transferred. */
  run(task: DistributiveOmit<DecodeTask, "id">, buffer: ArrayBufferLike, timeoutMs: number): Promise<unknown> {
    if (this.stopped) return Promise.reject(new Error("decode worker stopped"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new Error(`decode worker did not answer within ${timeoutMs} ms`));
        void this.worker.terminate();
      }, timeoutMs).unref();
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.worker.postMessage({ ...task, id } satisfies DecodeTask, [buffer as ArrayBuffer]);
      } catch (thrown) {
        // A task that cannot be cloned (a bug of its caller) fails alone.
        this.pending.delete(id);
        clearTimeout(timer);
        reject(thrown);
      }
    });
  }

  /** Stops the thread; its tasks fail with `reason`. Not a failure: the pool is closing. */
  async terminate(reason: Error): Promise<void> {
    this.stopped = true;
    this.failTasks(reason);
    await this.worker.terminate();
  }

  /** The worker died or hung: its tasks fail with `cause` (INTERNAL) and the pool hears of it, once. */
  private fail(cause: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    const inFlight = this.pending.size;
    this.failTasks(cause);
    this.markStarted();
    this.onFailure({ cause, inFlight, hadStarted: this.hasStarted });
  }

  private failTasks(reason: Error): void {
    for (const task of this.pending.values()) {
      clearTimeout(task.timer);
      task.reject(reason);
    }
    this.pending.clear();
  }
}
