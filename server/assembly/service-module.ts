import type { ServerConfig } from "../config.js";
import type { Logger } from "../observability/logger.js";
import type { ServerMetrics } from "../observability/metrics.js";
import type { RequestDecoder } from "../rpc/offloaded-decoding.js";
import type { ServiceRegistration } from "../rpc/service-registration.js";
import type { SqliteDatabase } from "../store/database.js";
import type { GroupCommitter } from "../store/group-commit.js";
import type { HttpRoute } from "../transport/http-server.js";

/** What every domain service is assembled from: one database, one committer, shared observability. */
export interface AssemblyContext {
  readonly config: ServerConfig;
  readonly db: SqliteDatabase;
  /** A read-only connection to `db`'s file (see `openReader`); undefined in memory. */
  readonly reader: SqliteDatabase | undefined;
  readonly committer: GroupCommitter;
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
  /** Decodes offloadable requests: the decode pool (`--decode-workers`), or inline when that is 0. */
  readonly decoder: RequestDecoder;
}

/**
 * One domain service, assembled: its store, watch hub and background work
 * behind the registrations both ports serve.
 */
export interface ServiceModule {
  /** Served on the gRPC port and the HTTP port alike. */
  readonly registrations: readonly ServiceRegistration[];
  /** Plain HTTP routes the module adds to the HTTP port (e.g. OTLP/HTTP). */
  readonly routes: ReadonlyMap<string, HttpRoute>;
  /**
   * Stops background work and closes the module's watch hubs (open watches
   * end, and their handlers answer UNAVAILABLE). Runs at shutdown before the
   * ports drain; idempotent.
   */
  stop(): void;
}
