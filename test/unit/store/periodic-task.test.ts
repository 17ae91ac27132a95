import { describe, expect, it } from "vitest";
import type { Logger } from "../../../server/observability/logger.js";
import { runPeriodically } from "../../../server/store/periodic-task.js";
import { within } from "../../fixtures/streams.js";

/** A logger that records `error` and `debug` lines. */
function recordingLogger(): { logger: Logger; lines: [level: string, message: string][] } {
  const lines: [string, string][] = [];
  const record = (level: string) => (_fields: unknown, message: string) => lines.push([level, message]);
  return { logger: { error: record("error"), debug: record("debug") } as unknown as Logger, lines };
}

/** Resolves once `check` holds, polling every few ms. */
async function until(check: () => boolean): Promise<void> {
  await within(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
    })(),
    2000,
  );
}

describe("runPeriodically", () => {
  it("logs a failed pass as an error and runs the next on schedule, never two at once", async () => {
    const { logger, lines } = recordingLogger();
    let passes = 0;
    let overlapping = 0;
    let active = 0;
    const task = runPeriodically(
      "pass",
      5,
      async () => {
        passes++;
        active++;
        overlapping = Math.max(overlapping, active);
        await new Promise((resolve) => setTimeout(resolve, 12));
        active--;
        if (passes === 1) throw new Error("disk full");
      },
      logger,
    );
    await until(() => passes >= 3);
    task.stop();
    expect(lines[0]).toEqual(["error", "pass failed"]);
    expect(overlapping).toBe(1);
  });

  it("logs a pass cut short after stop() at debug only", async () => {
    const { logger, lines } = recordingLogger();
    let release: (() => void) | undefined;
    let started = false;
    const task = runPeriodically(
      "pruning",
      5,
      async () => {
        started = true;
        await new Promise<void>((resolve) => (release = resolve));
        throw new Error("the store is closed; the server is shutting down");
      },
      logger,
    );
    await until(() => started);
    task.stop();
    release!();
    await until(() => lines.length > 0);
    expect(lines).toEqual([["debug", "pruning ended by the shutdown"]]);
  });
});
