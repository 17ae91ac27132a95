/**
 * The control-plane host (forked, never imported): the real server from
 * `startControlPlane`, both ports on 127.0.0.1:0, its database in the temp
 * directory the parent made, the configured durability and (when given)
 * per-service instance limit, logging silenced.
 */
import { join } from "node:path";
import { startControlPlane } from "../../../../server/app.js";
import { resolveConfig } from "../../../../server/config.js";
import { createLogger } from "../../../../server/observability/logger.js";
import { runHost } from "./run-host.js";

runHost(async (launch) => {
  if (launch.kind !== "control-plane") throw new Error(`control-plane host launched as ${launch.kind}`);
  // Environment variables are ignored so that a LATTICEFORGE_* setting of the
  // shell cannot change what is measured.
  const config = resolveConfig(
    {
      listen: "127.0.0.1:0",
      "http-listen": "127.0.0.1:0",
      db: join(launch.dir, "control-plane.db"),
      durability: launch.durability,
      "log-level": "silent",
      "shutdown-timeout": "2",
      ...(launch.maxInstancesPerService !== undefined ? { "max-instances-per-service": String(launch.maxInstancesPerService) } : {}),
    },
    {},
  );
  const controlPlane = await startControlPlane({ config, logger: createLogger({ level: "silent", pretty: false }) });
  return { grpcPort: controlPlane.grpcPort, stop: () => controlPlane.shutdown() };
});
