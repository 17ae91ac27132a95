import type { DescService } from "@bufbuild/protobuf";
import type { Server } from "@grpc/grpc-js";
import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import type { ServerConfig } from "./config.js";
import { ServingStatus } from "./core/serving-status.js";
import type { Logger } from "./observability/logger.js";
import { createServerMetrics, registerDecodeMetrics, type ServerMetrics } from "./observability/metrics.js";
import { assembleMirror } from "./assembly/mirror.js";
import { assembleRegistry } from "./assembly/registry.js";
import type { AssemblyContext, ServiceModule } from "./assembly/service-module.js";
import { assembleTracing } from "./assembly/tracing.js";
import { assembleXds } from "./assembly/xds.js";
import { createHealthService } from "./rpc/health.js";
import { createReflectionServices } from "./rpc/reflection.js";
import type { ServiceRegistration } from "./rpc/service-registration.js";
import { closeDatabase, openDatabase, openReader, pingDatabase, type SqliteDatabase } from "./store/database.js";
import { GroupCommitter } from "./store/group-commit.js";
import { migrations } from "./store/migrations.js";
import { createGrpcServer, grpcServerCredentials, type TlsMaterial } from "./transport/grpc-server.js";
import { createHttpServer, type HttpPort } from "./transport/http-server.js";
import { inlineDecoder } from "./rpc/offload-specs.js";
import { DecodePool } from "./transport/decode-pool.js";
import { instrumentService, rejectedCallRecorder } from "./transport/instrument.js";
import { createProbeRoutes } from "./transport/probes.js";
import type { AdjustXdsResource } from "./xds/ads-server.js";

/** A failure to start (bad TLS file, port in use, unusable database): one clear line for the operator. */
export class StartupError extends Error {}

/** What {@link startControlPlane} needs besides the configuration. */
export interface ControlPlaneOptions {
  readonly config: ServerConfig;
  readonly logger: Logger;
  /**
   * Last chance to change the registrations before they are served. Tests use
   * it to inject failing or slow handlers; production leaves it unset.
   */
  readonly adjustServices?: (registrations: ServiceRegistration[]) => ServiceRegistration[];
  /** Rewrites xDS resources before they are sent; tests use it to serve one clients reject. */
  readonly adjustXdsResource?: AdjustXdsResource;
}

/** A running control plane: both ports listening on one database. */
export interface ControlPlane {
  /** The bound gRPC port (useful with port 0). */
  readonly grpcPort: number;
  /** The bound HTTP port. */
  readonly httpPort: number;
  readonly metrics: ServerMetrics;
  readonly serving: ServingStatus;
  /**
   * Graceful shutdown, in order: health NOT_SERVING; stop accepting calls;
   * end open streams with UNAVAILABLE; wait for in-flight calls up to the
   * configured timeout; flush pending commits; checkpoint and close SQLite.
   * Idempotent: later calls return the first call's promise.
   */
  shutdown(): Promise<void>;
}

/**
 * Opens the database, assembles every service (domain services, health and
 * reflection), instruments them once, and serves the same registrations on
 * the gRPC port (grpc-js) and the HTTP port (connect-node).
 *
 * @throws StartupError when a port, a TLS file or the database cannot be used
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { config, logger } = options;
  const tls = readTls(config);
  const shadowCa = config.shadowTlsCa === undefined ? undefined : readFlagFile(config.shadowTlsCa, "--shadow-tls-ca");
  const metrics = createServerMetrics();
  const { db, reader } = openStore(config, logger);
  const committer = new GroupCommitter(db, {
    onCommit: ({ batchSize, seconds }) => {
      metrics.commitBatchSize.observe(batchSize);
      metrics.commitSeconds.observe(seconds);
    },
  });

  const decodePool = config.decodeWorkers > 0 ? new DecodePool({ workers: config.decodeWorkers, logger }) : undefined;
  if (decodePool !== undefined) {
    registerDecodeMetrics(metrics.registry, { counts: () => decodePool.counts, inFlight: () => decodePool.inFlight });
  }

  const decoder = decodePool ?? inlineDecoder;
  const context: AssemblyContext = { config, db, reader, committer, metrics, logger, decoder };
  const registry = assembleRegistry(context);
  const modules: ServiceModule[] = [
    registry,
    assembleXds(context, registry, options.adjustXdsResource),
    assembleMirror(context, shadowCa),
    assembleTracing(context),
  ];
  const domain = modules.flatMap((module) => module.registrations);
  const stopModules = (): void => {
    for (const module of modules) module.stop();
  };
  const serving = new ServingStatus();
  const health = createHealthService(serving);
  const served: DescService[] = [...domain.map((r) => r.service), health.service];
  const reflection = createReflectionServices(served);
  const all = [...domain, health, ...reflection];
  const registrations = options.adjustServices?.(all) ?? all;
  for (const { service } of registrations) serving.set(service.typeName, "serving");

  const shutdownController = new AbortController();
  setMaxListeners(0, shutdownController.signal);
  const instrumented = registrations.map((r) =>
    instrumentService(r, { metrics, logger, shutdownSignal: shutdownController.signal }),
  );

  const grpc = createGrpcServer(instrumented, {
    maxMessageBytes: config.maxMessageBytes,
    shutdownSignal: shutdownController.signal,
    decoder,
  });
  const http = createHttpServer({
    registrations: instrumented,
    routes: new Map([
      ...createProbeRoutes({
        metrics: metrics.registry,
        ready: () => {
          if (shutdownController.signal.aborted) return "shutting down";
          if (committer.failure !== undefined) return committer.failure.message;
          return pingDatabase(db) ? undefined : "database does not answer";
        },
      }),
      ...modules.flatMap((module) => [...module.routes]),
    ]),
    maxMessageBytes: config.maxMessageBytes,
    shutdownSignal: shutdownController.signal,
    recordRejectedCall: rejectedCallRecorder({ metrics, logger, shutdownSignal: shutdownController.signal }),
    ...(tls !== undefined ? { tls } : {}),
  });

  let grpcPort: number;
  let httpPort: number;
  try {
    grpcPort = await bindGrpc(grpc, config.listen, tls);
    httpPort = await listenHttp(http, config.httpListen);
  } catch (error) {
    stopModules();
    grpc.forceShutdown();
    http.server.close();
    void decodePool?.close();
    committer.close();
    reader?.close();
    closeDatabase(db);
    throw error;
  }
  // The decode workers' memory belongs to the start, not to the first requests.
  await decodePool?.ready();
  logger.info(
    { grpc: `${hostOf(config.listen)}:${grpcPort}`, http: `${hostOf(config.httpListen)}:${httpPort}`, db: config.db, tls: tls !== undefined },
    "control plane serving",
  );

  let stopping: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    const deadline = Date.now() + config.shutdownTimeoutSeconds * 1000;
    logger.info("shutdown: health set to NOT_SERVING");
    serving.setAllNotServing();
    // Let health watchers send NOT_SERVING before their streams end.
    await new Promise((resolve) => setImmediate(resolve));
    logger.info("shutdown: refusing new calls, ending open streams with UNAVAILABLE");
    shutdownController.abort();
    stopModules();
    await Promise.all([closeGrpc(grpc, deadline, logger), http.close(deadline)]);
    await decodePool?.close();
    logger.info("shutdown: in-flight calls done; flushing pending commits");
    committer.close();
    reader?.close();
    closeDatabase(db);
    logger.info("shutdown: database checkpointed and closed");
  };
  return {
    grpcPort,
    httpPort,
    metrics,
    serving,
    shutdown: () => (stopping ??= shutdown()),
  };
}

/** A file a flag names, read at startup. @throws StartupError naming the flag */
function readFlagFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new StartupError(`cannot read ${flag} ${path}: ${(error as Error).message}`);
  }
}

function readTls(config: ServerConfig): TlsMaterial | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return undefined;
  return {
    cert: readFlagFile(config.tlsCert, "--tls-cert"),
    key: readFlagFile(config.tlsKey, "--tls-key"),
    ...(config.tlsClientCa !== undefined ? { clientCa: readFlagFile(config.tlsClientCa, "--tls-client-ca") } : {}),
  };
}

/** The database and its read-only connection (see `openReader`). */
function openStore(config: ServerConfig, logger: Logger): { db: SqliteDatabase; reader: SqliteDatabase | undefined } {
  let db: SqliteDatabase | undefined;
  try {
    db = openDatabase({ path: config.db, durability: config.durability, migrations });
    const reader = openReader(db);
    logger.debug({ db: config.db, durability: config.durability }, "database open");
    return { db, reader };
  } catch (error) {
    if (db !== undefined) closeDatabase(db);
    throw new StartupError((error as Error).message);
  }
}

function bindGrpc(server: Server, address: string, tls: TlsMaterial | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpcServerCredentials(tls), (error, port) => {
      if (error !== null) reject(new StartupError(`cannot listen on ${address} (--listen): ${describeListenError(error)}`));
      else resolve(port);
    });
  });
}

function listenHttp(port: HttpPort, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      reject(new StartupError(`cannot listen on ${address} (--http-listen): ${describeListenError(error)}`));
    };
    port.server.once("error", onError);
    port.server.listen({ host: hostOf(address).replace(/^\[|\]$/g, ""), port: Number(address.slice(address.lastIndexOf(":") + 1)) }, () => {
      port.server.off("error", onError);
      const bound = port.server.address();
      resolve(typeof bound === "object" && bound !== null ? bound.port : 0);
    });
  });
}

function describeListenError(error: Error): string {
  if (/EADDRINUSE/.test(error.message) || (error as NodeJS.ErrnoException).code === "EADDRINUSE") return "address already in use";
  if (/EACCES/.test(error.message)) return "permission denied";
  if (/EADDRNOTAVAIL/.test(error.message)) return "address not available on this machine";
  return error.message;
}

function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(":"));
}

/** Graceful grpc-js shutdown bounded by `deadline`, then forced. */
function closeGrpc(server: Server, deadline: number, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      logger.warn("shutdown: timeout reached; cancelling remaining gRPC calls");
      server.forceShutdown();
      resolve();
    }, Math.max(0, deadline - Date.now()));
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
