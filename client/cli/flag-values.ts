import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { UsageError, type ClientInvocation } from "./client-flags.js";

/** A parsed flag's raw value, as {@link ClientInvocation.values} holds it. */
type FlagValue = string | boolean | undefined;

/**
 * An integer flag's value, or `fallback` when the flag is absent.
 *
 * @param min the smallest value accepted, when there is one
 * @throws UsageError naming the flag when the value is not an integer or below `min`
 */
export function integerFlag(value: FlagValue, flag: string, fallback: number, min?: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed)) throw new UsageError(`${flag} must be an integer, got "${String(value)}"`);
  if (min !== undefined && parsed < min) throw new UsageError(`${flag} must be at least ${min}, got ${parsed}`);
  return parsed;
}

/**
 * A number flag's value (fractions allowed), at least `min`; `fallback`
 * when the flag is absent.
 *
 * @throws UsageError naming the flag and the rule
 */
export function numberFlag(value: FlagValue, flag: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const parsed = typeof value === "string" && value.trim() !== "" ? Number(value) : Number.NaN;
  if (!Number.isFinite(parsed) || parsed < min) throw new UsageError(`${flag} must be a number >= ${min}, got "${String(value)}"`);
  return parsed;
}

/**
 * The value of the string flag `--flag`.
 *
 * @throws UsageError when it is missing or empty
 */
export function requiredFlag(cli: ClientInvocation, flag: string): string {
  const value = cli.values[flag];
  if (typeof value !== "string" || value === "") throw new UsageError(`--${flag} is required`);
  return value;
}

const ageUnitsMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A `--since` value as a Timestamp: an age before `nowMs` (`90s`, `15m`,
 * `2h`, `7d`, `250ms`) or an absolute RFC 3339 time
 * (`2026-11-24T13:00:00Z`); undefined when the flag is absent.
 *
 * @throws UsageError for anything else
 */
export function sinceFlag(value: FlagValue, flag: string, nowMs: number = Date.now()): Timestamp | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  const age = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (age !== null) return timestampFromMs(Math.floor(nowMs - Number(age[1]) * ageUnitsMs[age[2]!]!));
  const time = /^\d{4}-\d{2}-\d{2}T/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(time)) throw new UsageError(`${flag} must be an age (30s, 15m, 2h, 7d) or an RFC 3339 time, got "${text}"`);
  return timestampFromMs(time);
}

/**
 * The values of a repeatable string flag (declared `multiple: true`), in the
 * order given; empty when the flag is absent.
 */
export function repeatedFlag(value: FlagValue | readonly string[]): string[] {
  if (value === undefined || typeof value === "boolean") return [];
  return typeof value === "string" ? [value] : [...value];
}

/**
 * The items of a list flag: comma-separated, and the flag repeatable
 * (`--include a,b --include c` is `[a, b, c]`); empty when absent.
 *
 * @throws UsageError naming the flag when an item is empty (`a,,b`)
 */
export function listFlag(value: FlagValue | readonly string[], flag: string): string[] {
  return repeatedFlag(value).flatMap((text) =>
    text.split(",").map((item) => {
      const trimmed = item.trim();
      if (trimmed === "") throw new UsageError(`${flag} must be names separated by commas, got "${text}"`);
      return trimmed;
    }),
  );
}
