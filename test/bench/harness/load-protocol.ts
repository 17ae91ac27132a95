/**
 * What one load client process is told to do, as JSON in its first argument.
 * The load runs from start; latencies and completions count only between the
 * parent's `measure` and `stop` messages.
 */
export interface LoadJob {
  /** `127.0.0.1:port` of the server under test. */
  readonly address: string;
  /** URL of the compiled scenario module (see `LoadScenario`). */
  readonly scenario: string;
  /** Calls kept in flight by this client (closed loop). */
  readonly concurrency: number;
  /** This client's index among the clients of one run (0-based). */
  readonly client: number;
  /** Keep responses as bytes: no decoding, no `consume` (see `LoadSettings.rawResponses`). */
  readonly rawResponses: boolean;
  /**
   * Calls per second, open loop (e.g. load beside a latency probe, or the
   * probe itself): call `n` is due `n / rate` s after the start, and one due
   * while `concurrency` calls are in flight is skipped. Absent: closed loop.
   */
  readonly ratePerSecond?: number;
}

/** Parent → client: start counting (the warm-up is over). */
export interface MeasureMessage {
  readonly type: "measure";
}

/** Parent → client: stop counting, drain the calls in flight, answer with a {@link LoadClientResult} and exit. */
export interface StopMessage {
  readonly type: "stop";
}

/** Client → parent: connected, the load is running. */
export interface StartedMessage {
  readonly type: "started";
}

/** Client → parent: what the measured window saw. */
export interface LoadClientResult {
  readonly type: "result";
  /** Calls that completed OK inside the window. */
  readonly ops: number;
  /** Calls that failed at any time, warm-up included. */
  readonly errors: number;
  /** Status text of the first failed call, when any failed. */
  readonly firstError?: string;
  /** Length of the window on this client's clock. */
  readonly seconds: number;
  /** This client process's CPU time (user + system) in the window, in microseconds. */
  readonly cpuMicros: number;
  /**
   * Units the calls counted in {@link ops} carried, when the scenario counts
   * them from its answers (`LoadScenario.units`); absent otherwise.
   */
  readonly units?: number;
  /** Latency of every call counted in {@link ops}, in nanoseconds, unsorted. */
  readonly latenciesNs: Float64Array;
}

/** Every message between the parent and a load client. */
export type LoadMessage = MeasureMessage | StopMessage | StartedMessage | LoadClientResult;
