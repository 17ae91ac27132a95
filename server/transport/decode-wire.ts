/**
 * What crosses the thread boundary between the `DecodePool` and its
 * workers: tasks, replies, and thrown errors in a form structured clone
 * keeps (it drops classes, so errors travel as their kind and fields).
 */
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
import { UndecodableRequestError } from "../rpc/offloaded-decoding.js";

/**
 * A request for a decode worker: one request's bytes (a unary spec's), or
 * a chunk of one client stream's messages (a stream spec's). Their buffer
 * is transferred, not copied.
 */
export type DecodeTask = { readonly id: number; readonly path: string } & (
  | { readonly bytes: Uint8Array }
  | { readonly chunk: { readonly messages: readonly Uint8Array[]; readonly firstIndex: number; readonly context: unknown } }
);

/**
 * A decode worker's answer to a {@link DecodeTask}: for a chunk, `value` is
 * a {@link WireChunkResult}.
 */
export type DecodeReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: WireError };

/** A chunk's result as it crosses threads: its failure as a {@link WireError}. */
export interface WireChunkResult {
  readonly prepared: unknown[];
  readonly failure?: WireError;
}

/** What a decode worker posts once, when its modules are loaded and it takes tasks. */
export const workerReady = "ready";

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
