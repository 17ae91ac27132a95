import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError, type DomainErrorKind } from "../core/errors.js";

/**
 * The one table from domain error kinds to gRPC status codes (etcd keeps the
 * same shape in `api/v3rpc/util.go`).
 */
const codeByKind: Record<DomainErrorKind, Code> = {
  "invalid-field": Code.InvalidArgument,
  "not-found": Code.NotFound,
  "already-exists": Code.AlreadyExists,
  "limit-exceeded": Code.ResourceExhausted,
  "failed-precondition": Code.FailedPrecondition,
  unavailable: Code.Unavailable,
};

/** The message callers see for failures the server did not anticipate. */
export const internalErrorMessage = "internal error";

/**
 * Converts anything a handler threw into the `ConnectError` both transports
 * send. Domain errors keep their message; a `ConnectError` passes through
 * unchanged; anything else is a handler bug and becomes INTERNAL with a
 * generic message — its cause is never sent to the caller.
 *
 * @returns the error to send and whether it was unexpected (the caller logs
 *   the original with its stack when it was)
 */
export function toConnectError(error: unknown): { error: ConnectError; unexpected: boolean } {
  if (error instanceof ConnectError) return { error, unexpected: false };
  if (error instanceof DomainError) {
    return { error: new ConnectError(error.message, codeByKind[error.kind]), unexpected: false };
  }
  return { error: new ConnectError(internalErrorMessage, Code.Internal), unexpected: true };
}
