import { nextMessage } from "./ipc.js";
import { LatencyRecorder } from "./latency.js";
import type { LoadClientResult, LoadMessage } from "./load-protocol.js";

/** What {@link MeasuredWindow.run} needs. */
export interface MeasuredWindowOptions {
  /** How long the operations in flight at `stop` may take to finish before the window answers anyway. */
  readonly drainTimeoutMs: number;
  /** The parent bounds every run; this only ends a process the parent forgot. */
  readonly parentTimeoutMs: number;
  /** Runs as the window opens (e.g. to note a counter). */
  readonly onMeasure?: () => void;
  /** Runs as the window closes, before the drain (e.g. to stop a pacer). */
  readonly onStop?: () => void;
}

/**
 * The measured window of a process that generates load (a load client, a
 * raw pipeline), on the load client protocol: operations count between the
 * parent's `measure` and `stop` messages, each timed by
 * `process.hrtime.bigint()`, with the process's CPU time over the same span;
 * after `stop` the operations in flight drain.
 *
 * An operation calls {@link begin} as it starts and {@link end} when it is
 * over; the load stops issuing once {@link stopping}.
 */
export class MeasuredWindow {
  private readonly recorder = new LatencyRecorder();
  private measuring = false;
  private stopped = false;
  private inFlightCount = 0;
  private errors = 0;
  private firstError: string | undefined;
  private onDrained: (() => void) | undefined;
  /** Units reported by operations counted in the window; undefined until one reports any. */
  private units: number | undefined;

  /** The parent said `stop`: issue nothing more. */
  get stopping(): boolean {
    return this.stopped;
  }

  /** Operations begun and not ended. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /** An operation starts; pass the returned time to {@link end}. */
  begin(): bigint {
    this.inFlightCount++;
    return process.hrtime.bigint();
  }

  /**
   * The operation begun at `startedAt` is over; `error` describes its
   * failure, if it failed; `units` is what it carried, for an operation whose
   * size varies (see `LoadClientResult.units`).
   */
  end(startedAt: bigint, error?: string, units?: number): void {
    const elapsed = process.hrtime.bigint() - startedAt;
    this.inFlightCount--;
    if (error !== undefined) {
      this.errors++;
      this.firstError ??= error;
    } else if (this.measuring) {
      this.recorder.record(Number(elapsed));
      if (units !== undefined) this.units = (this.units ?? 0) + units;
    }
    if (this.stopped && this.inFlightCount === 0) this.onDrained?.();
  }

  /**
   * Listens for `measure` and `stop` (call it before announcing `started`:
   * the parent may answer at once) and resolves, once the window closed and
   * the operations in flight drained, with what the window saw.
   */
  async run(options: MeasuredWindowOptions): Promise<LoadClientResult> {
    let windowStart = 0n;
    let windowCpu: NodeJS.CpuUsage | undefined;
    const measured = nextMessage<LoadMessage, "measure">(process, "measure", options.parentTimeoutMs, "waiting for measure").then(() => {
      this.measuring = true;
      windowStart = process.hrtime.bigint();
      windowCpu = process.cpuUsage();
      options.onMeasure?.();
    });
    const stopped = nextMessage<LoadMessage, "stop">(process, "stop", options.parentTimeoutMs, "waiting for stop");
    await measured;
    await stopped;
    const seconds = Number(process.hrtime.bigint() - windowStart) / 1e9;
    const cpu = process.cpuUsage(windowCpu);
    this.measuring = false;
    this.stopped = true;
    options.onStop?.();
    if (this.inFlightCount > 0) {
      await new Promise<void>((resolve) => {
        this.onDrained = resolve;
        setTimeout(resolve, options.drainTimeoutMs).unref();
      });
    }
    return {
      type: "result",
      ops: this.recorder.count,
      errors: this.errors,
      ...(this.firstError !== undefined ? { firstError: this.firstError } : {}),
      seconds,
      cpuMicros: cpu.user + cpu.system,
      ...(this.units !== undefined ? { units: this.units } : {}),
      latenciesNs: this.recorder.snapshot(),
    };
  }
}
