import type { Durability } from "./store/database.js";

/** Everything `latticeforge serve` can be told, after parsing and checking. */
export interface ServerConfig {
  /** gRPC port address, `host:port` (port 0 picks a free one). */
  readonly listen: string;
  /** HTTP port address (Connect, gRPC-Web, metrics, probes). */
  readonly httpListen: string;
  /** SQLite file, or `:memory:` for a throwaway server. */
  readonly db: string;
  readonly durability: Durability;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly tlsClientCa: string | undefined;
  readonly maxMessageBytes: number;
  /** Seconds to wait for in-flight calls on shutdown before ending them. */
  readonly shutdownTimeoutSeconds: number;
  /** Worker threads decoding large ingest requests (gRPC IngestBatch and Export, OTLP/HTTP protobuf); 0 = on the event loop. */
  readonly decodeWorkers: number;
  readonly logLevel: LogLevel;
  readonly logFormat: "auto" | "json" | "pretty";
  /** Registry: seconds without a heartbeat before an instance is stale. */
  readonly heartbeatTimeoutSeconds: number;
  readonly maxInstancesPerService: number;
  /** Registry: seconds without a heartbeat before a stale instance is evicted; 0 = never. */
  readonly deregisterStaleAfterSeconds: number;
  /** Registry: share of instances whose stale eviction in one pass triggers self-preservation. */
  readonly selfPreservationThreshold: number;
  /** Registry: seconds between staleness passes. */
  readonly reapIntervalSeconds: number;
  /** Registry: time constant (seconds) of the health score's moving average. */
  readonly healthWindowSeconds: number;
  /** Registry: health-check latency (ms) at or below which a check scores 1. */
  readonly healthLatencyTargetMs: number;
  /** Registry: seconds an instance warms up after becoming routable again; 0 = no warm-up. */
  readonly warmupSeconds: number;
  /** Watches: seconds of idleness before a PROGRESS message. */
  readonly watchProgressSeconds: number;
  /** Watches: changes kept in each event log at least. */
  readonly historyChanges: number;
  /** Watches: seconds an event-log change is kept beyond the newest history-changes. */
  readonly historySeconds: number;
  /** Watches: seconds between event-log compactions. */
  readonly compactIntervalSeconds: number;
  /** Watches: changes queued per watcher before it falls back to catching up from the event log. */
  readonly watchQueueSize: number;
  /** Tracing: spans one trace may hold. */
  readonly maxSpansPerTrace: number;
  /** Tracing: seconds after its first span before a trace expires and is pruned. */
  readonly traceTtlSeconds: number;
  /** Tracing: a trace lasting longer than this (ms) is anomalous. */
  readonly anomalyThresholdMs: number;
  /** Tracing: a trace with at least this many error spans is anomalous; 0 = off. */
  readonly anomalyMinErrors: number;
  /** Tracing: default latency SLOs (ms) by service for the SLO report. */
  readonly serviceSlosMs: Readonly<Record<string, number>>;
  /** Tracing: seconds between background pruning passes. */
  readonly pruneIntervalSeconds: number;
  /** Mirror: mirrors that may be configured at once. */
  readonly maxMirrors: number;
  /** Mirror: PEM CA bundle HTTPS shadows may chain to, besides Node's root CAs. */
  readonly shadowTlsCa: string | undefined;
}

/** Levels accepted by `--log-level`. */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/** A flag or environment value that cannot be used; the message names it. */
export class ConfigError extends Error {}

/** One configuration setting: its flag, environment variable, default and parser. */
export interface ConfigOption {
  readonly key: keyof ServerConfig;
  /** Flag name without the leading dashes. */
  readonly flag: string;
  readonly env: string;
  /** The default as text, as `--help` and the README show it; undefined = unset. */
  readonly defaultValue: string | undefined;
  readonly description: string;
  readonly parse: (text: string, name: string) => ServerConfig[keyof ServerConfig];
}

const text = (value: string): string => value;

function oneOf<T extends string>(...allowed: T[]) {
  return (value: string, name: string): T => {
    if ((allowed as string[]).includes(value)) return value as T;
    throw new ConfigError(`${name} must be one of ${allowed.join(", ")}, got "${value}"`);
  };
}

function number(min: number, max: number, integer: boolean) {
  return (value: string, name: string): number => {
    const parsed = Number(value);
    if (value.trim() === "" || !Number.isFinite(parsed) || (integer && !Number.isInteger(parsed)) || parsed < min || parsed > max) {
      throw new ConfigError(`${name} must be ${integer ? "an integer" : "a number"} in ${min}..${max}, got "${value}"`);
    }
    return parsed;
  };
}

/**
 * Parses `service=ms,service=ms` (e.g. `discovery=15,mirror=5`) into SLOs;
 * an empty text gives none.
 */
export function parseServiceSlos(value: string, name: string): Record<string, number> {
  const slos: Record<string, number> = {};
  for (const entry of value.split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    const match = /^([A-Za-z0-9._-]{1,63})=([0-9]+(?:\.[0-9]+)?)$/.exec(entry);
    if (match === null || Number(match[2]) <= 0) {
      throw new ConfigError(`${name} must be service=ms pairs separated by commas with ms > 0, got "${entry}"`);
    }
    slos[match[1]!] = Number(match[2]);
  }
  return slos;
}

/**
 * Checks a `host:port` listen address (IPv6 hosts in brackets, port 0..65535).
 */
export function parseListenAddress(value: string, name: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (match === null || Number(match[2]) > 65535) {
    throw new ConfigError(`${name} must be host:port (IPv6 in brackets), got "${value}"`);
  }
  return value;
}

/** Every setting, in the order `--help` and the README list them. */
export const configOptions: readonly ConfigOption[] = [
  { key: "listen", flag: "listen", env: "LATTICEFORGE_LISTEN", defaultValue: "127.0.0.1:50051", description: "gRPC port (grpc-js): host:port", parse: parseListenAddress },
  { key: "httpListen", flag: "http-listen", env: "LATTICEFORGE_HTTP_LISTEN", defaultValue: "127.0.0.1:8080", description: "HTTP port: Connect, gRPC-Web, /metrics, /healthz, /readyz", parse: parseListenAddress },
  { key: "db", flag: "db", env: "LATTICEFORGE_DB", defaultValue: "./data/latticeforge.db", description: "SQLite database file (parent dirs created), or :memory:", parse: text },
  { key: "durability", flag: "durability", env: "LATTICEFORGE_DURABILITY", defaultValue: "full", description: "full: every acknowledged write is fsynced (survives power loss); normal: survives a process crash, an OS crash may lose the last commits", parse: oneOf("normal", "full") },
  { key: "tlsCert", flag: "tls-cert", env: "LATTICEFORGE_TLS_CERT", defaultValue: undefined, description: "PEM certificate chain; with --tls-key serves TLS on both ports", parse: text },
  { key: "tlsKey", flag: "tls-key", env: "LATTICEFORGE_TLS_KEY", defaultValue: undefined, description: "PEM private key for --tls-cert", parse: text },
  { key: "tlsClientCa", flag: "tls-client-ca", env: "LATTICEFORGE_TLS_CLIENT_CA", defaultValue: undefined, description: "PEM CA bundle; requires client certificates (mTLS)", parse: text },
  { key: "maxMessageBytes", flag: "max-message-bytes", env: "LATTICEFORGE_MAX_MESSAGE_BYTES", defaultValue: String(4 * 1024 * 1024), description: "largest request/response message; larger ones fail with RESOURCE_EXHAUSTED", parse: number(1024, 1024 * 1024 * 1024, true) },
  { key: "shutdownTimeoutSeconds", flag: "shutdown-timeout", env: "LATTICEFORGE_SHUTDOWN_TIMEOUT", defaultValue: "10", description: "seconds to wait for in-flight calls on SIGTERM/SIGINT", parse: number(0, 3600, false) },
  { key: "decodeWorkers", flag: "decode-workers", env: "LATTICEFORGE_DECODE_WORKERS", defaultValue: "1", description: "worker threads that decode and validate large ingest requests (IngestBatch, OTLP Export) off the event loop; 0 = on the event loop", parse: number(0, 64, true) },
  { key: "logLevel", flag: "log-level", env: "LATTICEFORGE_LOG_LEVEL", defaultValue: "info", description: "trace, debug (one line per RPC), info, warn, error, fatal or silent", parse: oneOf<LogLevel>("trace", "debug", "info", "warn", "error", "fatal", "silent") },
  { key: "logFormat", flag: "log-format", env: "LATTICEFORGE_LOG_FORMAT", defaultValue: "auto", description: "json, pretty, or auto (pretty when stdout is a terminal)", parse: oneOf("auto", "json", "pretty") },
  { key: "heartbeatTimeoutSeconds", flag: "heartbeat-timeout", env: "LATTICEFORGE_HEARTBEAT_TIMEOUT", defaultValue: "30", description: "registry: seconds without a heartbeat before an instance is stale (excluded from routing)", parse: number(0.1, 86_400, false) },
  { key: "maxInstancesPerService", flag: "max-instances-per-service", env: "LATTICEFORGE_MAX_INSTANCES_PER_SERVICE", defaultValue: "100", description: "registry: instances one service may register; more fail with RESOURCE_EXHAUSTED", parse: number(1, 1_000_000, true) },
  { key: "deregisterStaleAfterSeconds", flag: "deregister-stale-after", env: "LATTICEFORGE_DEREGISTER_STALE_AFTER", defaultValue: undefined, description: "registry: seconds without a heartbeat before an instance is evicted (default 3 × --heartbeat-timeout; 0 = never)", parse: number(0, 31_536_000, false) },
  { key: "selfPreservationThreshold", flag: "self-preservation-threshold", env: "LATTICEFORGE_SELF_PRESERVATION_THRESHOLD", defaultValue: "0.5", description: "registry: when a pass would evict more than this share of instances as stale, evict none (Eureka self-preservation)", parse: number(0, 1, false) },
  { key: "reapIntervalSeconds", flag: "reap-interval", env: "LATTICEFORGE_REAP_INTERVAL", defaultValue: "1", description: "registry: seconds between staleness and eviction passes", parse: number(0.01, 3600, false) },
  { key: "healthWindowSeconds", flag: "health-window", env: "LATTICEFORGE_HEALTH_WINDOW", defaultValue: "10", description: "registry: time constant (seconds) of the health score, an EWMA of health checks (latency, failures) and heartbeats; a score below 0.3 takes the instance out of routing", parse: number(0.01, 86_400, false) },
  { key: "healthLatencyTargetMs", flag: "health-latency-target", env: "LATTICEFORGE_HEALTH_LATENCY_TARGET", defaultValue: "250", description: "registry: health-check latency (ms) up to which a healthy check scores 1; slower ones score target/latency", parse: number(1, 3_600_000, false) },
  { key: "warmupSeconds", flag: "warmup", env: "LATTICEFORGE_WARMUP", defaultValue: "300", description: "registry: seconds an instance that becomes routable again ramps from 10% to 100% of its weight (0 = no warm-up)", parse: number(0, 86_400, false) },
  { key: "watchProgressSeconds", flag: "watch-progress-interval", env: "LATTICEFORGE_WATCH_PROGRESS_INTERVAL", defaultValue: "5", description: "watches: seconds of idleness before a PROGRESS message with the current revision (0 = never)", parse: number(0, 3600, false) },
  { key: "historyChanges", flag: "history-changes", env: "LATTICEFORGE_HISTORY_CHANGES", defaultValue: "100000", description: "watches: newest changes always kept in each event log for resuming watchers", parse: number(1, 100_000_000, true) },
  { key: "historySeconds", flag: "history-age", env: "LATTICEFORGE_HISTORY_AGE", defaultValue: "3600", description: "watches: older changes are compacted once also older than this many seconds", parse: number(0, 31_536_000, false) },
  { key: "compactIntervalSeconds", flag: "compact-interval", env: "LATTICEFORGE_COMPACT_INTERVAL", defaultValue: "60", description: "watches: seconds between event-log compactions", parse: number(0.01, 86_400, false) },
  { key: "watchQueueSize", flag: "watch-queue-size", env: "LATTICEFORGE_WATCH_QUEUE_SIZE", defaultValue: "1024", description: "watches: changes queued per watcher before a slow watcher falls back to catching up from the event log (bounds memory per watcher)", parse: number(1, 1_000_000, true) },
  { key: "maxSpansPerTrace", flag: "max-spans-per-trace", env: "LATTICEFORGE_MAX_SPANS_PER_TRACE", defaultValue: "500", description: "tracing: spans one trace may hold; further spans are dropped (Ingest: RESOURCE_EXHAUSTED)", parse: number(1, 1_000_000, true) },
  { key: "traceTtlSeconds", flag: "trace-ttl", env: "LATTICEFORGE_TRACE_TTL", defaultValue: "3600", description: "tracing: seconds after its first span before a trace expires (no more spans) and is pruned", parse: number(1, 31_536_000, false) },
  { key: "anomalyThresholdMs", flag: "anomaly-threshold", env: "LATTICEFORGE_ANOMALY_THRESHOLD", defaultValue: "1000", description: "tracing: milliseconds of total duration over which a trace is anomalous", parse: number(0, 86_400_000, false) },
  { key: "anomalyMinErrors", flag: "anomaly-min-errors", env: "LATTICEFORGE_ANOMALY_MIN_ERRORS", defaultValue: "0", description: "tracing: a trace with at least this many ERROR/TIMEOUT spans is anomalous too (0 = off)", parse: number(0, 1_000_000, true) },
  { key: "serviceSlosMs", flag: "service-slos", env: "LATTICEFORGE_SERVICE_SLOS", defaultValue: "discovery=15,mirror=5,tracing=25", description: "tracing: default latency SLOs (ms) of the SLO report, as service=ms pairs", parse: parseServiceSlos },
  { key: "pruneIntervalSeconds", flag: "prune-interval", env: "LATTICEFORGE_PRUNE_INTERVAL", defaultValue: "10", description: "tracing: seconds between background passes removing expired traces", parse: number(0.01, 86_400, false) },
  { key: "shadowTlsCa", flag: "shadow-tls-ca", env: "LATTICEFORGE_SHADOW_TLS_CA", defaultValue: undefined, description: "mirror: PEM CA bundle that HTTPS shadow endpoints' certificates may chain to, besides Node's root CAs", parse: text },
  { key: "maxMirrors", flag: "max-mirrors", env: "LATTICEFORGE_MAX_MIRRORS", defaultValue: "10", description: "mirror: mirrors that may be configured at once; more fail with RESOURCE_EXHAUSTED", parse: number(1, 1000, true) },
];

/**
 * Builds the server configuration: a flag wins over its environment variable,
 * which wins over the default.
 *
 * @param flags flag values by flag name (as `util.parseArgs` returns them)
 * @param env the process environment
 * @throws ConfigError naming the flag or variable for any unusable value
 */
export function resolveConfig(flags: Readonly<Record<string, string | undefined>>, env: NodeJS.ProcessEnv): ServerConfig {
  const config: Record<string, unknown> = {};
  for (const option of configOptions) {
    const fromFlag = flags[option.flag];
    const fromEnv = env[option.env];
    if (fromFlag !== undefined) config[option.key] = option.parse(fromFlag, `--${option.flag}`);
    else if (fromEnv !== undefined && fromEnv !== "") config[option.key] = option.parse(fromEnv, option.env);
    else config[option.key] = option.defaultValue === undefined ? undefined : option.parse(option.defaultValue, `--${option.flag}`);
  }
  config.deregisterStaleAfterSeconds ??= 3 * (config.heartbeatTimeoutSeconds as number);
  const resolved = config as unknown as ServerConfig;
  if ((resolved.tlsCert === undefined) !== (resolved.tlsKey === undefined)) {
    throw new ConfigError("--tls-cert and --tls-key must be given together");
  }
  if (resolved.tlsClientCa !== undefined && resolved.tlsCert === undefined) {
    throw new ConfigError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  return resolved;
}

/** The `--help` text of `latticeforge serve`: every flag with its variable and default. */
export function serveHelp(): string {
  const lines = ["Usage: latticeforge serve [flags]", "", "Flags (each also settable by its environment variable):"];
  const flags = configOptions.map((option) => `  --${option.flag} <value>`);
  const width = Math.max(...flags.map((flag) => flag.length)) + 2;
  configOptions.forEach((option, i) => {
    const def = option.defaultValue === undefined ? "" : ` (default ${option.defaultValue})`;
    lines.push(flags[i]!.padEnd(width) + `${option.env}${def}`);
    lines.push(" ".repeat(width) + option.description);
  });
  return lines.join("\n");
}
