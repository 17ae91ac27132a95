/**
 * Consistent sampling: whether a request falls into a `sample_rate` sample
 * depends on its id alone, so the same request gets the same decision in
 * every mirror, every process and every restart (what Envoy's runtime-fraction
 * mirroring does not give, envoy#12891).
 *
 * Rule: bucket = FNV-1a 32-bit hash of the key's UTF-8 bytes, modulo 10000,
 * unsalted; the request is sampled in when bucket < round(sample_rate ×
 * 10000). Consequences:
 * - a smaller rate's sample is a subset of a larger rate's (5% ⊂ 10%), so a
 *   request is shadowed end to end or not at all;
 * - the resolution is 1/10000: a rate that rounds to 0 samples nothing.
 *
 * Key: the request_id; when it is empty, the trace_id (all requests of one
 * trace then share a decision). With neither there is no consistent key.
 */

/** Buckets of the sampling hash; the resolution of `sample_rate` is 1/{@link sampleBuckets}. */
export const sampleBuckets = 10_000;

const fnvOffsetBasis = 0x811c9dc5;
const fnvPrime = 0x01000193;

/** Which request field a sampling key came from. */
export type SampleKeySource = "request_id" | "trace_id";

/** The key consistent sampling hashes, and where it came from. */
export interface SampleKey {
  readonly key: string;
  readonly source: SampleKeySource;
}

/**
 * The FNV-1a 32-bit hash of `text`'s UTF-8 bytes (a lone surrogate counts as
 * U+FFFD, as `TextEncoder` encodes it), as an unsigned integer.
 *
 * @example fnv1a32("foobar") // 0xbf9cf968
 */
export function fnv1a32(text: string): number {
  let hash = fnvOffsetBasis;
  const step = (byte: number): void => {
    hash = Math.imul(hash ^ byte, fnvPrime);
  };
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      step(code);
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        code = 0xfffd;
      }
    }
    if (code < 0x800) {
      step(0xc0 | (code >> 6));
    } else if (code < 0x10000) {
      step(0xe0 | (code >> 12));
      step(0x80 | ((code >> 6) & 0x3f));
    } else {
      step(0xf0 | (code >> 18));
      step(0x80 | ((code >> 12) & 0x3f));
      step(0x80 | ((code >> 6) & 0x3f));
    }
    step(0x80 | (code & 0x3f));
  }
  return hash >>> 0;
}

/** The key's bucket, 0..9999: `fnv1a32(key) % 10000`. */
export function sampleBucket(key: string): number {
  return fnv1a32(key) % sampleBuckets;
}

/** How many buckets a rate admits: `round(sampleRate × 10000)`, 0..10000. */
export function sampleThreshold(sampleRate: number): number {
  return Math.round(sampleRate * sampleBuckets);
}

/**
 * The sampling key of a request: its request_id, or its trace_id when the
 * request_id is empty; undefined when both are empty.
 */
export function sampleKey(requestId: string | undefined, traceId: string | undefined): SampleKey | undefined {
  if (requestId) return { key: requestId, source: "request_id" };
  if (traceId) return { key: traceId, source: "trace_id" };
  return undefined;
}

/** Whether `key` falls into a `sampleRate` sample (see the module comment). */
export function isSampledIn(key: string, sampleRate: number): boolean {
  return sampleBucket(key) < sampleThreshold(sampleRate);
}
