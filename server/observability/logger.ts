import { pino, type Logger, type LevelWithSilent } from "pino";

/** The server's structured logger (pino). */
export type { Logger };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level written; `silent` writes nothing (tests). */
  readonly level: LevelWithSilent;
  /**
   * Human-readable lines instead of JSON. Defaults to whether stdout is a
   * terminal, so operators read pretty logs and collectors get JSON.
   */
  readonly pretty?: boolean;
}

/**
 * Creates the process logger: JSON lines on stdout by default, pretty-printed
 * (through pino-pretty, when installed) when stdout is a TTY.
 */
export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({
      level: options.level,
      transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l" } },
    });
  }
  return pino({ level: options.level, base: { pid: process.pid } });
}
