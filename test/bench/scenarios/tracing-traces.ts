/**
 * The traces of the tracing bench, format-neutral (the native and OTLP
 * batches are built from the same shapes): deterministic per seed, shaped
 * like what an instrumented shop sends.
 *
 * A trace starts at a `frontend` HTTP server span and fans out over a few
 * (2–4) backend services: each remote call is a client span in the caller and
 * a server span in the callee, beside database and cache client spans,
 * internal spans and now and then an asynchronous producer → consumer pair.
 * Children nest inside their parent's interval, mostly one after the other,
 * some in parallel. About 2% of spans fail (status error, an `exception`
 * log); one trace in 200 is slow (over the collector's 1 s anomaly
 * threshold). Every span carries 2–4 tags, as OpenTelemetry's semantic
 * conventions name them.
 */

/** The role of a span, as both formats know it. */
export type ShapeKind = "server" | "client" | "internal" | "producer" | "consumer";

/** One span of a {@link TraceShape}, without its trace id. */
export interface SpanShape {
  /** 16 lowercase hex digits, unique in the trace. */
  readonly spanId: string;
  /** Absent on the root. */
  readonly parentSpanId?: string;
  readonly service: string;
  readonly operation: string;
  readonly kind: ShapeKind;
  readonly error: boolean;
  /** Nanoseconds since the epoch. */
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly tags: Readonly<Record<string, string>>;
  readonly logs: readonly { readonly timeNs: bigint; readonly fields: Readonly<Record<string, string>> }[];
}

/** A trace's spans, the root first, then in the order they were generated. */
export interface TraceShape {
  readonly spans: readonly SpanShape[];
}

/** A uniform random number generator in [0, 1), deterministic per seed (mulberry32). */
export type Random = () => number;

/** A {@link Random} seeded with `seed`. */
export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `value` as `digits` lowercase hex digits (value < 16^digits). */
export function hex(value: number, digits: number): string {
  return (value >>> 0).toString(16).padStart(digits, "0");
}

/** 16 random lowercase hex digits, never all zero. */
function randomSpanId(random: Random): string {
  const high = Math.floor(random() * 0x100000000);
  const low = Math.floor(random() * 0xffffffff) + 1;
  return hex(high, 8) + hex(low, 8);
}

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

const msNs = 1_000_000;

const frontendRoutes = ["GET /api/products", "GET /api/products/{id}", "POST /api/cart", "POST /api/checkout", "GET /api/orders/{id}", "GET /api/search"];

/** Backend services and their gRPC methods. */
const backends: Readonly<Record<string, readonly string[]>> = {
  checkout: ["PlaceOrder", "GetQuote"],
  payments: ["Charge", "Authorize"],
  inventory: ["Reserve", "GetStock"],
  catalog: ["GetProduct", "ListProducts"],
  search: ["Query"],
  accounts: ["GetUser", "CheckSession"],
  shipping: ["GetQuote", "CreateShipment"],
  pricing: ["GetPrice"],
  recommendations: ["ListRecommendations"],
};
const backendNames = Object.keys(backends);

const statements = [
  "SELECT id, name, price_cents FROM products WHERE id = $1",
  "SELECT quantity FROM stock WHERE sku = $1 FOR UPDATE",
  "INSERT INTO orders (id, user_id, total_cents) VALUES ($1, $2, $3)",
  "UPDATE carts SET updated_at = now() WHERE user_id = $1",
];
const internalOperations = ["render", "serialize", "validate", "compute-totals"];
const exceptions = [
  ["DeadlineExceeded", "deadline exceeded after 250ms"],
  ["ConnectionReset", "read ECONNRESET"],
  ["InvalidArgument", "sku must not be empty"],
] as const;

/** A span under construction: its shape plus where its next child goes. */
interface Draft {
  spanId: string;
  parentSpanId?: string;
  service: string;
  operation: string;
  kind: ShapeKind;
  error: boolean;
  startNs: number;
  endNs: number;
  tags: Record<string, string>;
  /** Start of the next sequential child (ns offsets from the trace start). */
  cursor: number;
}

/**
 * One trace of exactly `spanCount` spans (≥ 1) starting at `startNs`.
 *
 * @param slow a root over the 1 s anomaly threshold (1.2–2.5 s) instead of 15–400 ms
 */
export function traceShape(random: Random, spanCount: number, startNs: bigint, slow = false): TraceShape {
  const services = ["frontend"];
  const wanted = 2 + Math.floor(random() * 3);
  while (services.length < wanted + 1) {
    const candidate = pick(random, backendNames);
    if (!services.includes(candidate)) services.push(candidate);
  }
  const rootMs = slow ? 1200 + random() * 1300 : 15 * Math.pow(400 / 15, random());
  const route = pick(random, frontendRoutes);
  const root: Draft = {
    spanId: randomSpanId(random),
    service: "frontend",
    operation: route,
    kind: "server",
    error: false,
    startNs: 0,
    endNs: Math.round(rootMs * msNs),
    tags: { "http.method": route.split(" ")[0] as string, "http.route": route.split(" ")[1] as string, "http.status_code": "200", "net.host.name": "frontend" },
    cursor: 0,
  };
  root.cursor = Math.round(root.endNs * 0.02);
  const drafts: Draft[] = [root];
  /** Server spans: the spans that make calls. */
  const callers: Draft[] = [root];
  const usedIds = new Set([root.spanId]);

  const child = (parent: Draft, fields: Omit<Draft, "spanId" | "parentSpanId" | "startNs" | "endNs" | "cursor" | "error">, share: number, detached = false): Draft => {
    let spanId = randomSpanId(random);
    while (usedIds.has(spanId)) spanId = randomSpanId(random);
    usedIds.add(spanId);
    const length = parent.endNs - parent.startNs;
    let startNs: number;
    let endNs: number;
    if (detached) {
      // A consumer runs after its producer, possibly past the caller's end.
      startNs = parent.endNs + Math.round(random() * 2 * msNs);
      endNs = startNs + Math.round((1 + random() * 20) * msNs);
    } else {
      const room = parent.endNs - parent.cursor;
      const parallel = random() < 0.3;
      if (room > length * 0.05) {
        startNs = parent.cursor + Math.round(random() * 0.02 * length);
        endNs = Math.min(parent.endNs - 1, startNs + Math.max(1000, Math.round(room * share * (0.3 + random() * 0.7))));
      } else {
        // The parent is full: overlap an earlier child.
        startNs = parent.startNs + Math.round(random() * 0.8 * length);
        endNs = Math.min(parent.endNs - 1, startNs + Math.max(1000, Math.round(length * 0.1 * random())));
      }
      if (endNs < startNs) endNs = startNs;
      if (!parallel) parent.cursor = Math.max(parent.cursor, endNs);
    }
    const draft: Draft = { ...fields, spanId, parentSpanId: parent.spanId, startNs, endNs, error: random() < 0.02, cursor: startNs };
    draft.cursor = startNs + Math.round((endNs - startNs) * 0.05);
    drafts.push(draft);
    return draft;
  };

  while (drafts.length < spanCount) {
    const caller = callers[Math.floor(Math.pow(random(), 0.7) * callers.length)] as Draft;
    const room = spanCount - drafts.length;
    const r = random();
    if (r < 0.45 && room >= 2) {
      const others = services.filter((s) => s !== caller.service && s !== "frontend");
      const callee = others.length > 0 ? pick(random, others) : pick(random, backendNames);
      const method = pick(random, backends[callee] ?? ["Call"]);
      const rpcService = `shop.${callee}.v1.${callee[0]!.toUpperCase()}${callee.slice(1)}Service`;
      const rpcTags = { "rpc.system": "grpc", "rpc.service": rpcService, "rpc.method": method };
      const client = child(caller, { service: caller.service, operation: `${rpcService}/${method}`, kind: "client", tags: { ...rpcTags, "net.peer.name": callee } }, 0.6);
      const server = child(client, { service: callee, operation: `${rpcService}/${method}`, kind: "server", tags: { ...rpcTags, "rpc.grpc.status_code": "0" } }, 0.95);
      server.startNs = Math.min(client.endNs, client.startNs + Math.round((client.endNs - client.startNs) * 0.05));
      server.endNs = Math.max(server.startNs, client.endNs - Math.round((client.endNs - client.startNs) * 0.05));
      server.cursor = server.startNs;
      callers.push(server);
    } else if (r < 0.75) {
      const cache = random() < 0.35;
      child(
        caller,
        cache
          ? { service: caller.service, operation: "GET", kind: "client", tags: { "db.system": "redis", "db.operation": "GET", "net.peer.name": "redis" } }
          : { service: caller.service, operation: "postgresql.query", kind: "client", tags: { "db.system": "postgresql", "db.name": caller.service, "db.statement": pick(random, statements), "net.peer.name": "postgres" } },
        cache ? 0.1 : 0.3,
      );
    } else if (r < 0.95 || room < 2) {
      child(caller, { service: caller.service, operation: pick(random, internalOperations), kind: "internal", tags: { "code.function": pick(random, internalOperations), "thread.name": "main" } }, 0.2);
    } else {
      const topic = "order-events";
      const messaging = { "messaging.system": "kafka", "messaging.destination": topic };
      const producer = child(caller, { service: caller.service, operation: `${topic} publish`, kind: "producer", tags: { ...messaging, "messaging.operation": "publish" } }, 0.05);
      child(producer, { service: "notifications", operation: `${topic} process`, kind: "consumer", tags: { ...messaging, "messaging.operation": "process" } }, 1, true);
    }
  }

  return {
    spans: drafts.map((draft): SpanShape => {
      const start = startNs + BigInt(draft.startNs);
      const end = startNs + BigInt(draft.endNs);
      const tags = draft.error ? { ...draft.tags, ...(draft.tags["http.status_code"] !== undefined ? { "http.status_code": "500" } : {}), error: "true" } : draft.tags;
      const [type, message] = pick(random, exceptions);
      return {
        spanId: draft.spanId,
        ...(draft.parentSpanId !== undefined ? { parentSpanId: draft.parentSpanId } : {}),
        service: draft.service,
        operation: draft.operation,
        kind: draft.kind,
        error: draft.error,
        startNs: start,
        endNs: end,
        tags,
        logs: draft.error ? [{ timeNs: end, fields: { event: "exception", "exception.type": type, "exception.message": message } }] : [],
      };
    }),
  };
}

/**
 * Traces of 5–20 spans (uniform) that add up to exactly `spanCount`
 * (≥ 5), starting 12 ms apart from `startNs`; one in 200 is slow.
 */
export function traceShapes(random: Random, spanCount: number, startNs: bigint): TraceShape[] {
  const traces: TraceShape[] = [];
  let left = spanCount;
  while (left > 0) {
    // Leave either nothing or at least 5 spans for the last trace.
    const size = left <= 20 ? left : 5 + Math.floor(random() * (Math.min(20, left - 5) - 5 + 1));
    traces.push(traceShape(random, size, startNs + BigInt(traces.length * 12 * msNs), random() < 0.005));
    left -= size;
  }
  return traces;
}
