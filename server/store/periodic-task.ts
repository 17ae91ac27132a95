import type { Logger } from "../observability/logger.js";

/** A background pass started by {@link runPeriodically}. */
export interface PeriodicTask {
  /** Cancels the timer; a pass already running still completes (or fails quietly). Idempotent. */
  stop(): void;
}

/**
 * Runs `pass` every `intervalMs` on an unref'd timer (it never keeps the
 * process alive). Passes never overlap: a tick that finds the previous pass
 * still running is skipped. A failed pass is logged as `<name> failed` (an
 * error) and the next one runs on schedule; a pass that fails after
 * {@link PeriodicTask.stop} (cut short by the shutdown closing the store)
 * is logged at debug only.
 */
export function runPeriodically(
  name: string,
  intervalMs: number,
  pass: () => Promise<void>,
  logger: Logger,
): PeriodicTask {
  let running = false;
  let stopped = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    pass()
      .catch((error: unknown) => {
        if (stopped) logger.debug({ err: error }, `${name} ended by the shutdown`);
        else logger.error({ err: error }, `${name} failed`);
      })
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
