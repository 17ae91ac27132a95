import { parseArgs, type ParseArgsConfig } from "node:util";
import { GrpcConnection } from "../grpc-client.js";
import { createOutput, type Output } from "./output.js";

/** Flags every client command takes. */
export const clientFlagOptions = {
  addr: { type: "string" },
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  json: { type: "boolean" },
  timeout: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

/** Help lines for {@link clientFlagOptions}. */
export const clientFlagsHelp = [
  "  --addr host:port     gRPC address (LATTICEFORGE_ADDR, default 127.0.0.1:50051)",
  "  --tls-ca FILE        trust this CA (enables TLS)",
  "  --tls-cert FILE      client certificate for mTLS (with --tls-key)",
  "  --tls-key FILE       client key for mTLS",
  "  --timeout SECONDS    per-call deadline (default 10)",
  "  --json               print JSON instead of a table",
].join("\n");

/**
 * Channel options of CLI connections: reconnect attempts back off to at most
 * 5 s (grpc-js's default allows 120 s), so a watch resumes within seconds of
 * the server coming back after a long outage.
 */
const cliChannelOptions = { "grpc.max_reconnect_backoff_ms": 5000, "grpc.initial_reconnect_backoff_ms": 250 };

/** A parsed client command line: its positionals, connection and output. */
export interface ClientInvocation {
  readonly positionals: string[];
  readonly values: Record<string, string | boolean | undefined>;
  readonly address: string;
  readonly timeoutMs: number;
  readonly output: Output;
  /** Opens the gRPC connection described by the flags. */
  connect(): GrpcConnection;
  /** The `http(s)://addr` base URL of the gRPC port, for connect-node's gRPC transport. */
  readonly baseUrl: string;
}

/** A command-line mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

/**
 * Parses a client command's arguments: the shared connection and output
 * flags plus the command's own `extra` options.
 */
export function parseClientArgs(args: readonly string[], extra: ParseArgsConfig["options"] = {}): ClientInvocation {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: { ...clientFlagOptions, ...extra }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const address = (values.addr as string | undefined) ?? process.env.LATTICEFORGE_ADDR ?? "127.0.0.1:50051";
  const timeoutSeconds = Number((values.timeout as string | undefined) ?? "10");
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`--timeout must be a positive number of seconds`);
  const ca = values["tls-ca"] as string | undefined;
  const cert = values["tls-cert"] as string | undefined;
  const key = values["tls-key"] as string | undefined;
  const tls = ca !== undefined || cert !== undefined ? { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } : undefined;
  return {
    positionals: parsed.positionals,
    values,
    address,
    timeoutMs: timeoutSeconds * 1000,
    output: createOutput(values.json === true),
    connect: () =>
      new GrpcConnection({ address, ...(tls !== undefined ? { tls } : {}), channelOptions: cliChannelOptions }),
    baseUrl: `${tls !== undefined ? "https" : "http"}://${address}`,
  };
}
