/**
 * What one watch client process is told to do, as JSON in its first
 * argument: hold `streams` watches open on `address`, `streamsPerChannel` per
 * grpc-js channel (each channel its own HTTP/2 connection).
 */
export interface WatchJob {
  /** `127.0.0.1:port` of the server under test. */
  readonly address: string;
  /** URL of the compiled watch scenario module (see `WatchScenario`). */
  readonly scenario: string;
  readonly streams: number;
  readonly streamsPerChannel: number;
  /** This client's index among the watch clients of one run (0-based). */
  readonly client: number;
  /** The run-wide number of this client's first stream (streams of earlier clients come before). */
  readonly firstStream: number;
}

/** Client → parent: every stream is established (got its first message). */
export interface WatchingMessage {
  readonly type: "watching";
}

/**
 * Parent → client: the writes are done; here is when each was sent. The
 * client waits until every stream has seen the last revision (or
 * `timeoutMs`), then answers with a {@link WatchClientResult}.
 */
export interface CollectMessage {
  readonly type: "collect";
  /** Revision of each write, in the order sent. */
  readonly revisions: Float64Array;
  /** `process.hrtime` (CLOCK_MONOTONIC, shared by every process on the machine) just before each write was sent, in ns. */
  readonly sentNs: Float64Array;
  readonly timeoutMs: number;
}

/** Client → parent: delivery latencies of this client's streams. */
export interface WatchClientResult {
  readonly type: "watch-result";
  /** Receipt minus send time of every (write, stream) pair delivered, in ns, unsorted. */
  readonly latenciesNs: Float64Array;
  /** Pairs expected: the (write, stream) pairs the scenario says are seen; writes × streams by default. */
  readonly expected: number;
  /** Streams that failed before the parent's stop. */
  readonly failedStreams: number;
  readonly firstError?: string;
  /** `process.hrtime` of the last delivery, in ns; 0 when none. */
  readonly lastReceiptNs: number;
  /** This client process's CPU time (user + system) from `watching` to its answer, in microseconds. */
  readonly cpuMicros: number;
}

/** Parent → client: cancel the streams and exit. */
export interface WatchStopMessage {
  readonly type: "stop";
}

/** Every message between the parent and a watch client. */
export type WatchMessage = WatchingMessage | CollectMessage | WatchClientResult | WatchStopMessage;
