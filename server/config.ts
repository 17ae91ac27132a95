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
  readonly logLevel: LogLevel;
  readonly logFormat: "auto" | "json" | "pretty";
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
  { key: "logLevel", flag: "log-level", env: "LATTICEFORGE_LOG_LEVEL", defaultValue: "info", description: "trace, debug (one line per RPC), info, warn, error, fatal or silent", parse: oneOf<LogLevel>("trace", "debug", "info", "warn", "error", "fatal", "silent") },
  { key: "logFormat", flag: "log-format", env: "LATTICEFORGE_LOG_FORMAT", defaultValue: "auto", description: "json, pretty, or auto (pretty when stdout is a terminal)", parse: oneOf("auto", "json", "pretty") },
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
  for (const option of configOptions) {
    const def = option.defaultValue === undefined ? "" : ` (default ${option.defaultValue})`;
    lines.push(`  --${option.flag} <value>`.padEnd(32) + `${option.env}${def}`);
    lines.push(" ".repeat(32) + option.description);
  }
  return lines.join("\n");
}
