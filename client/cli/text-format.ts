/**
 * Small wording helpers shared by the CLI's commands, so counts and shares
 * read the same in every command's output.
 */

/**
 * `count` with `noun`, plural unless the count is 1.
 *
 * @example plural(3, "span") // "3 spans"
 */
export function plural(count: number | bigint, noun: string): string {
  return `${count} ${noun}${count === 1 || count === 1n ? "" : "s"}`;
}

/**
 * A 0..1 share as a percentage with `digits` decimals (default 1).
 *
 * @example percent(0.0525, 2) // "5.25%"
 */
export function percent(share: number, digits = 1): string {
  return `${(share * 100).toFixed(digits)}%`;
}
