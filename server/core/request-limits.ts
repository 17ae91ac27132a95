import { InvalidFieldError } from "./errors.js";

/**
 * A request's count field (a `limit`, a `batch_size`) where proto3's 0, which
 * the wire cannot tell from unset, means the default: 0 or undefined gives
 * `fallback`, anything else must be an integer in 1..`max`.
 *
 * @throws InvalidFieldError naming `field` otherwise
 */
export function resolveLimit(value: number | undefined, fallback: number, max: number, field: string): number {
  if (value === undefined || value === 0) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidFieldError(field, `must be an integer in 1..${max} (0 for ${fallback}), got ${value}`);
  }
  return value;
}
