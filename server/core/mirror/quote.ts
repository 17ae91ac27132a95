/**
 * How the mirror core quotes an offending value in a message: as a JSON
 * string, cut to 64 characters, so control characters and long values stay
 * readable.
 */

const maxQuotedChars = 64;

/** `value` as a JSON string, cut to a readable length. */
export function quote(value: string): string {
  return JSON.stringify(value.length > maxQuotedChars ? `${value.slice(0, maxQuotedChars)}…` : value);
}
