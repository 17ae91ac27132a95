import { randomBytes } from "node:crypto";

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing and
 * writing the `traceparent` and `tracestate` HTTP headers, to the letter of
 * Level 1 (W3C Recommendation), taking from Level 2
 * (https://www.w3.org/TR/trace-context-2/) only what a Level 1 peer accepts
 * unchanged: the random-trace-id flag and the rule that a full tracestate
 * drops its right-most member when a new one is added.
 *
 * Quotations in comments are from the Level 1 text unless marked "Level 2".
 */

/** One tracestate list-member: `[key, value]`. */
export type TraceStateEntry = readonly [key: string, value: string];

/**
 * A trace context as carried by `traceparent` and `tracestate`.
 *
 * Invariants (checked by {@link injectTraceContext}, guaranteed by every
 * function here that returns one):
 * - `traceId` is 32 lowercase hex digits, `parentId` 16, neither all zero;
 * - `traceFlags` has only known bits ({@link TRACE_FLAG_SAMPLED},
 *   {@link TRACE_FLAG_RANDOM}) and `sampled === ((traceFlags & 1) === 1)`;
 * - `traceState` has at most 32 members with valid, distinct keys and valid
 *   values, left-most first (the left-most belongs to whoever wrote
 *   `traceparent`).
 *
 * @example
 * const context: TraceContext = {
 *   traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
 *   parentId: "00f067aa0ba902b7",
 *   sampled: true,
 *   traceFlags: TRACE_FLAG_SAMPLED,
 *   traceState: [["rojo", "00f067aa0ba902b7"], ["congo", "t61rcWkgMzE"]],
 * };
 */
export interface TraceContext {
  /** The trace (`trace-id`): 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** The caller's span (`parent-id`): 16 lowercase hex digits, not all zero. */
  readonly parentId: string;
  /** The sampled bit of `traceFlags`: the caller may have recorded trace data. */
  readonly sampled: boolean;
  /**
   * `trace-flags` as a number, with bits other than sampled (0x01) and
   * random trace id (0x02, Level 2) cleared: "Vendors MUST set those to zero".
   */
  readonly traceFlags: number;
  /** `tracestate` list-members, left-most first; empty when absent or discarded. */
  readonly traceState: ReadonlyArray<TraceStateEntry>;
}

/**
 * Headers as accepted by {@link extractTraceContext} and
 * {@link injectTraceContext}: Fetch `Headers` (connect-es) or a plain object
 * such as Node's `IncomingHttpHeaders`, where an array holds repeated fields.
 *
 * @example
 * const fromNode: TraceContextHeaders = request.headers;
 * const fromFetch: TraceContextHeaders = new Headers({ traceparent: "00-…-01" });
 */
export type TraceContextHeaders = Headers | Record<string, string | string[] | undefined>;

/**
 * A source of random bytes, shaped like `crypto.randomBytes`.
 *
 * @example
 * const fixed: RandomBytes = (size) => new Uint8Array(size).fill(0xab);
 */
export type RandomBytes = (size: number) => Uint8Array;

/**
 * The sampled flag: "the caller may have recorded trace data".
 *
 * @example
 * const sampled = (context.traceFlags & TRACE_FLAG_SAMPLED) === TRACE_FLAG_SAMPLED;
 */
export const TRACE_FLAG_SAMPLED = 0x01;

/**
 * Level 2's random-trace-id flag: at least the right-most 7 bytes of the
 * trace-id are random. A Level 1 peer ignores it; Level 2 requires it to be
 * propagated unchanged with the same trace-id, so it is kept.
 *
 * @example
 * const random = (context.traceFlags & TRACE_FLAG_RANDOM) === TRACE_FLAG_RANDOM;
 */
export const TRACE_FLAG_RANDOM = 0x02;

/**
 * Most list-members a tracestate may hold: "There can be a maximum of 32
 * list-members in a list."
 *
 * @example
 * if (context.traceState.length === MAX_TRACE_STATE_MEMBERS) console.warn("tracestate is full");
 */
export const MAX_TRACE_STATE_MEMBERS = 32;

/** The flags this implementation understands; the others are zeroed. */
const KNOWN_FLAGS = TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM;

const TRACE_ID = /^[0-9a-f]{32}$/;
const PARENT_ID = /^[0-9a-f]{16}$/;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_PARENT_ID = "0".repeat(16);

/**
 * Version 00 is exactly `version-format = trace-id "-" parent-id "-"
 * trace-flags`, so anything after the flags makes it invalid.
 * HEXDIGLC is lowercase only.
 */
const TRACEPARENT_V00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * A higher version, per "Versioning of traceparent": the trace-id is the 32
 * characters after the first dash, followed by a dash; the parent-id the 16
 * after it, followed by a dash; the flags the 2 after that, "either the end of
 * the string or a dash". What follows that dash is an unknown field: "Vendors
 * MUST NOT parse or assume anything about unknown fields".
 * (The rule "shorter than 55 characters ... should not parse" is implied: the
 * pattern needs 55.)
 */
const TRACEPARENT_FUTURE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-|$)/;

/**
 * Level 1 key grammar:
 * ```abnf
 * key = simple-key / multi-tenant-key
 * simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 * multi-tenant-key = tenant-id "@" system-id
 * tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 * system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 * ```
 * So a simple key is 1–256 characters starting with a letter; a multi-tenant
 * key has a 1–241 character tenant, one `@` and a 1–14 character system.
 * (Level 2 relaxed this to any mix of `@` after a letter or digit; that
 * accepts keys a Level 1 peer rejects, so it is not followed.)
 */
const TRACE_STATE_KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;

/**
 * ```abnf
 * value    = 0*255(chr) nblk-chr
 * nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
 * chr      = %x20 / nblk-chr
 * ```
 * 1–256 printable ASCII characters without `,` or `=`, not ending in a space.
 */
const TRACE_STATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/** RFC 9110 §5.6.3 OWS: spaces and horizontal tabs only. */
const LEADING_OR_TRAILING_OWS = /^[ \t]+|[ \t]+$/g;

function trimOws(value: string): string {
  return value.replace(LEADING_OR_TRAILING_OWS, "");
}

/**
 * Every field line of `name` (lowercase), in order. Header names are ASCII
 * case-insensitive, so in a plain object `TraceState` and `tracestate` are two
 * lines of the same field. Fetch `Headers` has already combined repeated
 * lines into one value joined by ", " (RFC 9110 §5.3).
 */
function fieldLines(headers: TraceContextHeaders, name: string): string[] {
  if (headers instanceof Headers) {
    const value = headers.get(name);
    return value === null ? [] : [value];
  }
  const lines: string[] = [];
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined || key.toLowerCase() !== name) continue;
    if (typeof value === "string") lines.push(value);
    else lines.push(...value);
  }
  return lines;
}

/**
 * Parses one `traceparent` field value; undefined when it is invalid.
 *
 * Steps, from "Versioning of traceparent" and the processing model:
 * 1. Strip OWS: "a field value does not include leading or trailing
 *    whitespace" (RFC 9110 §5.5).
 * 2. Version `ff` is invalid. Version `00` must match the version-format
 *    exactly. Any other version is parsed by position (see TRACEPARENT_FUTURE).
 * 3. "All bytes as zero ... is considered an invalid value" for both ids.
 * 4. Only the flags this implementation knows are kept; "Vendors will set all
 *    unparsed / unknown trace-flags to 0 on outgoing requests."
 *
 * @example
 * parseTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
 * // → { traceId: "4bf92f35…", parentId: "00f067aa0ba902b7", sampled: true, traceFlags: 1, traceState: [] }
 * parseTraceParent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); // → undefined
 */
export function parseTraceParent(value: string): TraceContext | undefined {
  const field = trimOws(value);
  let match = TRACEPARENT_V00.exec(field);
  let traceId: string | undefined;
  let parentId: string | undefined;
  let flags: string | undefined;
  if (match !== null) {
    [, traceId, parentId, flags] = match;
  } else {
    match = TRACEPARENT_FUTURE.exec(field);
    if (match === null || match[1] === "00" || match[1] === "ff") return undefined;
    [, , traceId, parentId, flags] = match;
  }
  if (traceId === undefined || parentId === undefined || flags === undefined) return undefined;
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_PARENT_ID) return undefined;
  const traceFlags = Number.parseInt(flags, 16) & KNOWN_FLAGS;
  return { traceId, parentId, sampled: (traceFlags & TRACE_FLAG_SAMPLED) !== 0, traceFlags, traceState: [] };
}

/**
 * Parses a `tracestate` field value (repeated fields already combined with
 * commas); undefined when the whole value must be discarded.
 *
 * The rules, and which text each follows:
 * - "Spaces and horizontal tabs surrounding list-members are ignored", so each
 *   comma-separated member is stripped of SP/HTAB at both ends. A value's
 *   leading spaces sit after the `=` and are kept (`chr` includes 0x20); its
 *   trailing ones are OWS, since a value cannot end in a space.
 * - "Empty and whitespace-only list members are allowed" and carry nothing.
 *   They do not count toward the limit: they exist "because it is difficult
 *   for a vendor to recognize the empty value when multiple tracestate headers
 *   are sent", and counting them would reject a valid 32-entry state merely
 *   for how it was split.
 * - "There can be a maximum of 32 list-members in a list" (the ABNF is
 *   `list-member 0*31( OWS "," OWS list-member )`): a longer list does not
 *   parse, and "If the tracestate header cannot be parsed the vendor MAY
 *   discard the entire header". It is discarded rather than truncated:
 *   dropping the right-most entries is the rule for *adding* an entry to a
 *   full list (Level 2), not for accepting an invalid one, and the W3C test
 *   suite (`test_tracestate_member_count_limit`) expects the discard.
 * - An invalid key or value makes the member, hence the list, unparseable.
 * - "Only one entry per key is allowed" (Level 1 "Combined Header Value"): a
 *   repeated key makes the list invalid, as the Level 1 test suite's
 *   `test_tracestate_duplicated_keys` expects.
 *
 * @example
 * parseTraceState("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
 * // → [["rojo", "00f067aa0ba902b7"], ["congo", "t61rcWkgMzE"]]
 * parseTraceState("foo=1,foo=2"); // → undefined
 */
export function parseTraceState(value: string): TraceStateEntry[] | undefined {
  const entries: TraceStateEntry[] = [];
  const seen = new Set<string>();
  for (const raw of value.split(",")) {
    const member = trimOws(raw);
    if (member === "") continue;
    if (entries.length === MAX_TRACE_STATE_MEMBERS) return undefined;
    const eq = member.indexOf("=");
    if (eq < 0) return undefined;
    const key = member.slice(0, eq);
    const memberValue = member.slice(eq + 1);
    if (!TRACE_STATE_KEY.test(key) || !TRACE_STATE_VALUE.test(memberValue) || seen.has(key)) return undefined;
    seen.add(key);
    entries.push([key, memberValue]);
  }
  return entries;
}

/**
 * Reads the trace context of an incoming request; undefined when there is no
 * valid `traceparent` (the caller then starts a new trace, see
 * {@link newTraceContext}).
 *
 * - Header names are ASCII case-insensitive.
 * - More than one `traceparent` field is invalid: the field is a single value,
 *   not a list. Fetch `Headers` cannot tell repeats apart: it joins them with
 *   ", ", which fails to parse unless the first is a higher version with
 *   extra fields (whose content is not ours to judge).
 * - "If the vendor failed to parse traceparent, it MUST NOT attempt to parse
 *   tracestate." Conversely "failure to parse tracestate MUST NOT affect the
 *   parsing of traceparent": an invalid tracestate yields `traceState: []`.
 * - "When receiving multiple tracestate header fields, they MUST be combined
 *   into a single header according to RFC9110": joined with commas, in order.
 *
 * @example
 * const context = extractTraceContext({
 *   TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
 *   tracestate: "congo=t61rcWkgMzE",
 * });
 * // → { traceId: "0af76519…", parentId: "b7ad6b7169203331", sampled: true, traceFlags: 1,
 * //     traceState: [["congo", "t61rcWkgMzE"]] }
 */
export function extractTraceContext(headers: TraceContextHeaders): TraceContext | undefined {
  const parents = fieldLines(headers, "traceparent");
  if (parents.length !== 1) return undefined;
  const parent = parseTraceParent(parents[0]!);
  if (parent === undefined) return undefined;
  const states = fieldLines(headers, "tracestate");
  const traceState = states.length === 0 ? [] : (parseTraceState(states.join(",")) ?? []);
  return { ...parent, traceState };
}

/**
 * Throws a TypeError naming the first field of `context` that breaks a
 * {@link TraceContext} invariant.
 */
function validateTraceContext(context: TraceContext): void {
  validateTraceParent(context);
  validateTraceState(context.traceState);
}

function validateTraceParent(context: Omit<TraceContext, "traceState">): void {
  const { traceId, parentId, traceFlags, sampled } = context;
  if (typeof traceId !== "string" || !TRACE_ID.test(traceId) || traceId === ZERO_TRACE_ID) {
    throw new TypeError(`traceId must be 32 lowercase hex digits, not all zero, got ${JSON.stringify(traceId)}`);
  }
  if (typeof parentId !== "string" || !PARENT_ID.test(parentId) || parentId === ZERO_PARENT_ID) {
    throw new TypeError(`parentId must be 16 lowercase hex digits, not all zero, got ${JSON.stringify(parentId)}`);
  }
  if (!Number.isInteger(traceFlags) || traceFlags < 0 || (traceFlags & ~KNOWN_FLAGS) !== 0) {
    throw new TypeError(`traceFlags must use only bits 0x01 (sampled) and 0x02 (random), got ${String(traceFlags)}`);
  }
  if (sampled !== ((traceFlags & TRACE_FLAG_SAMPLED) !== 0)) {
    throw new TypeError(`sampled must equal bit 0x01 of traceFlags, got sampled ${String(sampled)} with traceFlags ${String(traceFlags)}`);
  }
}

function validateTraceStateMember(key: string, value: string): void {
  if (typeof key !== "string" || !TRACE_STATE_KEY.test(key)) {
    throw new TypeError(`tracestate key must be a simple key [a-z][a-z0-9_-*/]{0,255} or tenant@system (1-241 and 1-14 characters), got ${JSON.stringify(key)}`);
  }
  if (typeof value !== "string" || !TRACE_STATE_VALUE.test(value)) {
    throw new TypeError(`tracestate value of ${key} must be 1-256 printable ASCII characters without "," or "=", not ending in a space, got ${JSON.stringify(value)}`);
  }
}

function validateTraceState(traceState: ReadonlyArray<TraceStateEntry>): void {
  if (traceState.length > MAX_TRACE_STATE_MEMBERS) {
    throw new TypeError(`traceState must have at most ${MAX_TRACE_STATE_MEMBERS} members, got ${traceState.length}`);
  }
  const seen = new Set<string>();
  for (const [key, value] of traceState) {
    validateTraceStateMember(key, value);
    if (seen.has(key)) throw new TypeError(`traceState must not repeat a key, got ${JSON.stringify(key)} twice`);
    seen.add(key);
  }
}

/**
 * The `traceparent` value of `context`, always version 00 ("construct the new
 * traceparent field according to the highest version of the specification
 * known to the implementation"). Throws a TypeError when its ids or flags are
 * invalid; its tracestate is not looked at.
 *
 * @example
 * formatTraceParent(context); // → "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
 */
export function formatTraceParent(context: Omit<TraceContext, "traceState">): string {
  validateTraceParent(context);
  return traceParentOf(context);
}

function traceParentOf(context: Omit<TraceContext, "traceState">): string {
  return `00-${context.traceId}-${context.parentId}-${context.traceFlags.toString(16).padStart(2, "0")}`;
}

/**
 * The `tracestate` value of a list, members joined by "," without OWS
 * ("a caller SHOULD NOT generate optional whitespace" other than a single
 * space); "" when it is empty. Throws a TypeError when the list is invalid
 * (see {@link TraceContext}).
 *
 * @example
 * formatTraceState([["rojo", "00f067aa0ba902b7"], ["congo", "t61rcWkgMzE"]]);
 * // → "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
 */
export function formatTraceState(traceState: ReadonlyArray<TraceStateEntry>): string {
  validateTraceState(traceState);
  return traceStateOf(traceState);
}

function traceStateOf(traceState: ReadonlyArray<TraceStateEntry>): string {
  return traceState.map(([key, value]) => `${key}=${value}`).join(",");
}

/**
 * Writes `context` into outgoing headers, as lowercase `traceparent` and
 * `tracestate` ("tracing systems SHOULD encode the header name as ASCII
 * lowercase"), and returns them. The given headers are modified in place; any
 * existing trace context fields, in any casing, are replaced. `tracestate` is
 * removed rather than sent empty when the context has none ("Vendors ... SHOULD
 * avoid sending them"), so a stale one never travels with a new traceparent.
 *
 * The context is validated first (see {@link TraceContext}); an invalid one
 * throws a TypeError and leaves the headers untouched.
 *
 * @example
 * const headers = injectTraceContext(childContext(incoming ?? newTraceContext()));
 * // → { traceparent: "00-…-01", tracestate: "rojo=00f067aa0ba902b7" }
 * injectTraceContext(context, new Headers()); // a Headers with both set
 */
export function injectTraceContext(context: TraceContext): Record<string, string>;
export function injectTraceContext<H extends TraceContextHeaders>(context: TraceContext, headers: H): H;
export function injectTraceContext(
  context: TraceContext,
  headers: TraceContextHeaders = {},
): TraceContextHeaders {
  validateTraceContext(context);
  const traceparent = traceParentOf(context);
  const tracestate = traceStateOf(context.traceState);
  if (headers instanceof Headers) {
    headers.set("traceparent", traceparent);
    if (tracestate === "") headers.delete("tracestate");
    else headers.set("tracestate", tracestate);
    return headers;
  }
  for (const key of Object.keys(headers)) {
    const lower = key.toLowerCase();
    if (lower === "traceparent" || lower === "tracestate") delete headers[key];
  }
  headers["traceparent"] = traceparent;
  if (tracestate !== "") headers["tracestate"] = tracestate;
  return headers;
}

/** How often an all-zero id is redrawn before the random source is blamed. */
const MAX_ID_DRAWS = 8;

function randomId(random: RandomBytes, bytes: number, field: string): string {
  for (let draw = 0; draw < MAX_ID_DRAWS; draw++) {
    const id = random(bytes);
    if (id.length !== bytes) throw new TypeError(`random must return ${bytes} bytes for ${field}, got ${id.length}`);
    // "All bytes as zero ... is considered an invalid value": draw again.
    if (id.some((byte) => byte !== 0)) return Buffer.from(id).toString("hex");
  }
  throw new Error(`random returned an all-zero ${field} ${MAX_ID_DRAWS} times`);
}

/**
 * Starts a new trace: random trace-id and parent-id, no tracestate. The
 * random-trace-id flag is set, as Level 2 asks when the trace-id is random
 * ("SHOULD be set"); Level 1 peers ignore it.
 *
 * `sampled` defaults to true, like the seed's `inject_trace_context`.
 *
 * @example
 * const root = newTraceContext();
 * injectTraceContext(root, headers);
 * // deterministic in tests:
 * newTraceContext((size) => new Uint8Array(size).fill(1), false);
 * // → { traceId: "0101…01", parentId: "0101010101010101", sampled: false, traceFlags: 2, traceState: [] }
 */
export function newTraceContext(random: RandomBytes = randomBytes, sampled = true): TraceContext {
  const traceId = randomId(random, 16, "traceId");
  const parentId = randomId(random, 8, "parentId");
  const traceFlags = TRACE_FLAG_RANDOM | (sampled ? TRACE_FLAG_SAMPLED : 0);
  return { traceId, parentId, sampled, traceFlags, traceState: [] };
}

/**
 * The context to send downstream from an operation that continues `parent`:
 * a new parent-id (the "Update parent-id" mutation, "the most typical"), the
 * same trace-id and flags (Level 2: the random flag "MUST also be set in all
 * outgoing traceparent headers which use the same trace-id"), and the same
 * tracestate ("Vendors receiving a tracestate request header MUST send it to
 * outgoing requests"). Throws a TypeError when `parent` is invalid.
 *
 * @example
 * const incoming = extractTraceContext(request.headers);
 * const outgoing = childContext(incoming ?? newTraceContext());
 * injectTraceContext(outgoing, outgoingHeaders);
 */
export function childContext(parent: TraceContext, random: RandomBytes = randomBytes): TraceContext {
  validateTraceContext(parent);
  return { ...parent, parentId: randomId(random, 8, "parentId") };
}

/**
 * Sets `key` to `value` in the context's tracestate and moves it to the front:
 * "Modified keys MUST be moved to the beginning (left) of the list" and "The
 * new key-value pair MUST be added to the beginning (left) of the list". The
 * order of the other members is kept. When adding would exceed 32 members,
 * "the right-most list-member should be removed from the list" (Level 2).
 *
 * Returns a new context; `context` is not modified. Throws a TypeError when the
 * key or value is invalid, or `context` is.
 *
 * Call it on a {@link childContext}: "If the value of the traceparent field
 * wasn't changed before propagation, tracestate MUST NOT be modified as well."
 *
 * @example
 * const next = updateTraceState(childContext(incoming), "rojo", "00f067aa0ba902b7");
 * formatTraceState(next.traceState); // → "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
 */
export function updateTraceState(context: TraceContext, key: string, value: string): TraceContext {
  validateTraceContext(context);
  validateTraceStateMember(key, value);
  const others = context.traceState.filter(([existing]) => existing !== key);
  const entry: TraceStateEntry = [key, value];
  const traceState = [entry, ...others].slice(0, MAX_TRACE_STATE_MEMBERS);
  return { ...context, traceState };
}
