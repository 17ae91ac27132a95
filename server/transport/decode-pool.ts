import { Worker } from "node:worker_threads";
import {
  AlreadyExistsError,
  DomainError,
  FailedPreconditionError,
  InvalidFieldError,
  LimitExceededError,
  NotFoundError,
  UnavailableError,
  type DomainErrorKind,
} from "../core/errors.js";
import type { Logger } from "../observability/logger.js";
import { decodeAndPrepare, UndecodableRequestError, type RequestDecoder } from "../rpc/offloaded-decoding.js";
import { offloadSpecs } from "../rpc/offload-specs.js";

/** A request for a decode worker: the bytes' buffer is transferred, not copied. */
export interface DecodeTask {
  readonly id: number;
  readonly path: string;
  readonly bytes: Uint8Array;
}

/** A decode worker's answer to a {@link DecodeTask}. */
export type DecodeReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

/** An error thrown in a worker, as it crosses the thread boundary. */
export type WireError =
  | { readonly kind: DomainErrorKind; readonly message: string; readonly field?: string; readonly reason?: string }
  | { readonly kind: "undecodable"; readonly typeName: string; readonly detail: string }
  | { readonly kind: "bug"; readonly message: string; readonly stack?: string };

/** What a worker sends back for a thrown value: domain errors keep their class (and field), anything else is a bug. */
export function toWireError(thrown: unknown): WireError {
  if (thrown instanceof UndecodableRequestError) return { kind: "undecodable", typeName: thrown.typeName, detail: thrown.detail };
  if (thrown instanceof InvalidFieldError) return { kind: thrown.kind, message: thrown.message, field: thrown.field, reason: thrown.reason };
  if (thrown instanceof DomainError) return { kind: thrown.kind, message: thrown.message };
  const error = thrown instanceof Error ? thrown : new Error(String(thrown));
  return { kind: "bug", message: error.message, ...(error.stack !== undefined ? { stack: error.stack } : {}) };
}

const domainErrors: Record<Exclude<DomainErrorKind, "invalid-field">, new (message: string) => DomainError> = {
  "not-found": NotFoundError,
  "already-exists": AlreadyExistsError,
  "limit-exceeded": LimitExceededError,
  "failed-precondition": FailedPreconditionError,
  unavailable: UnavailableError,
};

/** The error a {@link WireError} stands for, of the class the worker threw (a bug is a plain Error, with the worker's stack). */
export function fromWireError(wire: WireError): Error {
  if (wire.kind === "bug") {
    const error = new Error(wire.message);
    if (wire.stack !== undefined) error.stack = wire.stack;
    return error;
  }
  if (wire.kind === "undecodable") return new UndecodableRequestError(wire.typeName, wire.detail);
  if (wire.kind === "invalid-field") return new InvalidFieldError(wire.field ?? "request", wire.reason ?? wire.message);
  return new domainErrors[wire.kind](wire.message);
}

/** Options of a {@link DecodePool}. */
export interface DecodePoolOptions {
  /** Worker threads; at least 1. */
  readonly workers: number;
  /**
   * Requests smaller than this many bytes are decoded inline: a worker's
   * round trip (~0.1 ms) costs more than decoding them. Default 16 KiB.
   */
  readonly inlineBelowBytes?: number;
  readonly logger: Logger;
  /** The worker's module; default the compiled `decode-worker.js`. Tests substitute their own. */
  readonly workerUrl?: URL;
}

/** Requests a {@link DecodePool} decoded, by where: on the event loop (small ones) or in a worker. */
export interface DecodeCounts {
  readonly inline: number;
  readonly worker: number;
}

/**
 * The compiled worker. From the TypeScript sources (the tests), that is the
 * build in `dist/`, which the test setup compiles before any test runs.
 */
const compiledWorkerUrl = import.meta.url.endsWith(".ts")
  ? new URL("../../dist/server/transport/decode-worker.js", import.meta.url)
  : new URL("./decode-worker.js", import.meta.url);

/**
 * Worker threads that decode and prepare offloadable requests (see
 * `OffloadSpec`), so the event loop does not spend ~12 ms per 1,000-span
 * batch on protobuf decoding and validation while GetTrace calls wait.
 *
 * Invariants:
 * - A task goes to the worker with the fewest tasks in flight; each worker
 *   answers its tasks in order.
 * - The request bytes are copied once into a buffer of their own, which is
 *   transferred (grpc-js may hold the original).
 * - A worker that dies (it should not: `prepare` is pure and its errors are
 *   answered) fails its tasks in flight with an error that maps to INTERNAL,
 *   is logged, and is replaced.
 * - After {@link close}, every task in flight and every new one fails with
 *   UNAVAILABLE. Workers are unreferenced: they never keep the process up.
 */
export class DecodePool implements RequestDecoder {
  private readonly workers: DecodeWorker[] = [];
  private readonly inlineBelowBytes: number;
  private readonly logger: Logger;
  private readonly workerUrl: URL;
  private closed = false;
  private inline = 0;
  private offloaded = 0;

  constructor(options: DecodePoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) throw new RangeError(`workers must be a positive integer, got ${options.workers}`);
    this.inlineBelowBytes = options.inlineBelowBytes ?? 16 * 1024;
    this.logger = options.logger;
    this.workerUrl = options.workerUrl ?? compiledWorkerUrl;
    for (let i = 0; i < options.workers; i++) this.workers.push(this.spawn());
  }

  /** Requests decoded so far, by where. */
  get counts(): DecodeCounts {
    return { inline: this.inline, worker: this.offloaded };
  }

  /** Requests the workers are decoding now. */
  get inFlight(): number {
    let total = 0;
    for (const worker of this.workers) total += worker.inFlight;
    return total;
  }

  /** Decodes and prepares `bytes` for the spec at `path`, in a worker unless they are small. */
  decode(path: string, bytes: Uint8Array): Promise<unknown> {
    const spec = offloadSpecs.get(path);
    if (spec === undefined) return Promise.reject(new Error(`no offload spec for ${path}`));
    if (this.closed) return Promise.reject(new UnavailableError("server shutting down"));
    if (bytes.byteLength < this.inlineBelowBytes) {
      this.inline++;
      try {
        return Promise.resolve(decodeAndPrepare(spec, bytes));
      } catch (thrown) {
        return Promise.reject(thrown);
      }
    }
    let least = this.workers[0]!;
    for (const worker of this.workers) if (worker.inFlight < least.inFlight) least = worker;
    this.offloaded++;
    return least.run(path, bytes);
  }

  /** Stops the workers; what they were decoding fails with UNAVAILABLE. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((worker) => worker.terminate(new UnavailableError("server shutting down"))));
  }

  private spawn(): DecodeWorker {
    const worker = new DecodeWorker(this.workerUrl, (code, pending) => {
      const index = this.workers.indexOf(worker);
      if (this.closed || index < 0) return;
      this.logger.error({ code, inFlight: pending }, "decode worker exited; starting another");
      this.workers[index] = this.spawn();
    });
    return worker;
  }
}

/** One worker thread and its tasks in flight. */
class DecodeWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private nextId = 0;
  private exited = false;

  constructor(url: URL, onUnexpectedExit: (code: number, inFlight: number) => void) {
    this.worker = new Worker(url);
    this.worker.unref();
    this.worker.on("message", (reply: DecodeReply) => {
      const task = this.pending.get(reply.id);
      if (task === undefined) return;
      this.pending.delete(reply.id);
      if (reply.ok) task.resolve(reply.value);
      else task.reject(fromWireError(reply.error));
    });
    // An 'error' event is always followed by 'exit'; the tasks fail there.
    this.worker.on("error", () => undefined);
    this.worker.on("exit", (code) => {
      if (this.exited) return;
      this.exited = true;
      const inFlight = this.pending.size;
      this.failAll(new Error(`decode worker exited with code ${code}`));
      onUnexpectedExit(code, inFlight);
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  run(path: string, bytes: Uint8Array): Promise<unknown> {
    if (this.exited) return Promise.reject(new Error("decode worker exited"));
    const id = this.nextId++;
    const own = new Uint8Array(bytes);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const task: DecodeTask = { id, path, bytes: own };
      this.worker.postMessage(task, [own.buffer]);
    });
  }

  async terminate(reason: Error): Promise<void> {
    this.exited = true;
    this.failAll(reason);
    await this.worker.terminate();
  }

  private failAll(reason: Error): void {
    for (const task of this.pending.values()) task.reject(reason);
    this.pending.clear();
  }
}
