import { setLogger, setLogVerbosity, logVerbosity } from "@grpc/grpc-js";
import { parseArgs } from "node:util";
import { StartupError, startControlPlane } from "./app.js";
import { ConfigError, configOptions, resolveConfig, serveHelp } from "./config.js";
import { createLogger } from "./observability/logger.js";

/** How long after the shutdown a connection may still keep the process alive. */
const exitGraceMs = 1000;

/**
 * `latticeforge serve`: reads flags and `LATTICEFORGE_*` variables, starts
 * the control plane, and shuts it down gracefully on SIGTERM or SIGINT (a
 * second signal forces the exit).
 *
 * Startup failures print one line to stderr and resolve to a non-zero exit
 * code: 2 for unusable configuration, 1 for anything else.
 *
 * @returns the process exit code, once the server has stopped
 */
export async function runServe(args: readonly string[]): Promise<number> {
  let config;
  try {
    const { values } = parseArgs({
      args: [...args],
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(configOptions.map((option) => [option.flag, { type: "string" as const }])),
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help === true) {
      process.stdout.write(serveHelp() + "\n");
      return 0;
    }
    config = resolveConfig(values as Record<string, string | undefined>, process.env);
  } catch (error) {
    process.stderr.write(`latticeforge serve: ${(error as Error).message}\n`);
    return error instanceof ConfigError || (error as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS") ? 2 : 1;
  }

  const logger = createLogger({
    level: config.logLevel,
    ...(config.logFormat !== "auto" ? { pretty: config.logFormat === "pretty" } : {}),
  });
  // grpc-js writes its own diagnostics to stderr; route them into our log
  // so that stderr carries only the one-line startup error.
  setLogger({ error: (...args: unknown[]) => logger.debug({ grpc: args.join(" ") }, "grpc-js") });
  setLogVerbosity(logVerbosity.ERROR);
  let controlPlane;
  try {
    controlPlane = await startControlPlane({ config, logger });
  } catch (error) {
    const message = error instanceof StartupError ? error.message : `unexpected startup failure: ${(error as Error).stack ?? String(error)}`;
    process.stderr.write(`latticeforge serve: ${message}\n`);
    logger.flush();
    return 1;
  }
  process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled promise rejection"));

  const running = controlPlane;
  return new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        logger.warn({ signal }, "second signal: exiting without finishing the shutdown");
        logger.flush();
        process.exit(1);
      }
      signalled = true;
      logger.info({ signal, timeoutSeconds: config.shutdownTimeoutSeconds }, "shutdown: signal received");
      const exit = (code: number): void => {
        logger.flush();
        resolve(code);
        // Everything is closed; only a connection whose peer stopped reading
        // can still hold the process (Node ends such a socket only once its
        // queued data is written). It must not keep the process alive.
        setTimeout(() => {
          logger.warn("shutdown: exiting with a connection still open (its peer stopped reading)");
          logger.flush();
          process.exit(code);
        }, exitGraceMs).unref();
      };
      running.shutdown().then(
        () => {
          logger.info("shutdown: complete");
          exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, "shutdown failed");
          exit(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}
