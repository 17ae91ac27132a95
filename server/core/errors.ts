/**
 * Typed domain errors. The core and the store throw these and never a
 * transport error; the edge (`server/transport/error-mapping.ts`) maps each
 * kind to one gRPC status code in a single table.
 *
 * Messages are written for the caller: they name the field or the entity and
 * the rule that was broken, e.g. `weight must be 1..100, got 0`.
 */
export abstract class DomainError extends Error {
  /** Discriminant used by the edge's mapping table. */
  abstract readonly kind: DomainErrorKind;
}

/** Every kind of domain error, one per gRPC status the edge can produce. */
export type DomainErrorKind =
  | "invalid-field"
  | "not-found"
  | "already-exists"
  | "limit-exceeded"
  | "failed-precondition"
  | "unavailable";

/** A request field breaks a validation rule. Maps to INVALID_ARGUMENT. */
export class InvalidFieldError extends DomainError {
  readonly kind = "invalid-field";
  /**
   * @param field the request field's name as the API spells it (snake_case,
   *   with a path for nested fields: `instance.endpoint`)
   * @param reason the rule that was broken, with the value seen
   */
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field} ${reason}`);
  }
}

/** The named entity does not exist. Maps to NOT_FOUND. */
export class NotFoundError extends DomainError {
  readonly kind = "not-found";
}

/** An entity with the same identity exists already. Maps to ALREADY_EXISTS. */
export class AlreadyExistsError extends DomainError {
  readonly kind = "already-exists";
}

/** A configured limit would be exceeded. Maps to RESOURCE_EXHAUSTED. */
export class LimitExceededError extends DomainError {
  readonly kind = "limit-exceeded";
}

/**
 * The system is not in a state that allows the operation (for example a trace
 * without a root yet). Maps to FAILED_PRECONDITION.
 */
export class FailedPreconditionError extends DomainError {
  readonly kind = "failed-precondition";
}

/**
 * The server cannot serve the call right now and the client should retry,
 * possibly elsewhere (for example while shutting down). Maps to UNAVAILABLE.
 */
export class UnavailableError extends DomainError {
  readonly kind = "unavailable";
}
