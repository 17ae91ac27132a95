import { setTimeout as sleep } from "node:timers/promises";
import { nextMessage } from "./ipc.js";
import { mergeSorted, nearestRank } from "./latency.js";
import { spread } from "./load-runner.js";
import { forkChild, reapChild } from "./processes.js";
import type { WatchJob, WatchMessage } from "./watch-protocol.js";

const watchClientModule = new URL("./watch-client.js", import.meta.url);

/** How long watch clients may take to connect and establish every stream (they give up after 70 s). */
const watchingTimeoutMs = 80_000;
/** How long after the last write every stream may take to see it. */
const collectTimeoutMs = 10_000;
/** How long a watch client may take to answer beyond that. */
const resultGraceMs = 10_000;
/** Pause between the last stream established and the stats sample, for the server's stream setup to finish. */
const settleMs = 1_000;

/** The shape of a fan-out measurement. */
export interface WatchSettings {
  /** Watch streams in total, spread over the clients. */
  readonly streams: number;
  /** Streams per grpc-js channel (HTTP/2 connection). */
  readonly streamsPerChannel: number;
  /** Watch client processes. */
  readonly clients: number;
  /** Writes per second while measuring (open loop: the pace does not wait for answers). */
  readonly rate: number;
  /** Seconds of writes. */
  readonly seconds: number;
}

/** Makes the changes the watchers receive; one per call, answering with the change's revision. */
export interface FanOutWriter {
  /** Writes change `sequence` (0, 1, …) and resolves with its revision once acknowledged. */
  write(sequence: number): Promise<number>;
  close(): void;
}

/** What {@link runWatch} needs. */
export interface WatchRunOptions<Sample> {
  /** `127.0.0.1:port` of the server under test. */
  readonly address: string;
  /** URL of the compiled watch scenario module (see `WatchScenario`). */
  readonly scenario: string;
  readonly settings: WatchSettings;
  /** Connects the writer, in this (the parent) process. */
  readonly writer: (address: string) => Promise<FanOutWriter>;
  /** Samples the server; `gc` asks for a full collection first. */
  readonly sample: (gc: boolean) => Promise<Sample>;
}

/** What the watch clients measured, merged. */
export interface WatchResult {
  readonly writes: number;
  readonly streams: number;
  /** (write, stream) pairs the scenario's watches are to see: writes × streams unless it subscribes them to parts. */
  readonly expected: number;
  /** Pairs delivered before the collect timeout. */
  readonly delivered: number;
  /** Streams that failed during the measurement. */
  readonly failedStreams: number;
  readonly firstError?: string;
  /** CPU time of every watch client while the writes were delivered, in microseconds. */
  readonly clientCpuMicros: number;
  /** Delivered pairs ÷ (last receipt − first send). */
  readonly deliveriesPerSecond: number;
  /** Delivery latency (receipt − send) over every delivered pair, nearest rank. */
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** A watch result with server samples: before any stream, with every stream open (both after a full GC), after the deliveries. */
export interface WatchRun<Sample> {
  readonly result: WatchResult;
  readonly idle: Sample;
  readonly opened: Sample;
  readonly after: Sample;
}

/**
 * Runs one fan-out measurement:
 * 1. samples the idle server (after a full GC);
 * 2. forks the watch clients and waits until each of their streams is
 *    established, lets the server settle, samples again (after a full GC):
 *    the difference is the memory the open streams hold;
 * 3. writes `rate × seconds` changes at a fixed pace from this process,
 *    noting `process.hrtime` just before each is sent;
 * 4. hands the revisions and send times to the clients, which wait until
 *    every stream saw the last write and answer with the latency of every
 *    (write, stream) pair; samples the server a third time.
 * The clients are gone when it settles.
 */
export async function runWatch<Sample>(options: WatchRunOptions<Sample>): Promise<WatchRun<Sample>> {
  const { settings } = options;
  const idle = await options.sample(true);
  let firstStream = 0;
  const children = spread(settings.streams, settings.clients).map((streams, client) => {
    const job: WatchJob = {
      address: options.address,
      scenario: options.scenario,
      streams,
      streamsPerChannel: settings.streamsPerChannel,
      client,
      firstStream,
    };
    firstStream += streams;
    return forkChild(watchClientModule, [JSON.stringify(job)]);
  });
  try {
    await Promise.all(
      children.map((child, client) => nextMessage<WatchMessage, "watching">(child, "watching", watchingTimeoutMs, `watch client ${client} streams`)),
    );
    await sleep(settleMs);
    const opened = await options.sample(true);

    const writer = await options.writer(options.address);
    const count = Math.max(1, Math.round(settings.rate * settings.seconds));
    const revisions = new Float64Array(count);
    const sentNs = new Float64Array(count);
    const writes: Promise<void>[] = [];
    const start = performance.now();
    try {
      for (let i = 0; i < count; i++) {
        const wait = start + (i * 1000) / settings.rate - performance.now();
        if (wait > 0) await sleep(wait);
        sentNs[i] = Number(process.hrtime.bigint());
        writes.push(
          writer.write(i).then((revision) => {
            revisions[i] = revision;
          }),
        );
      }
      await Promise.all(writes);
    } finally {
      writer.close();
    }

    const answers = children.map((child, client) =>
      nextMessage<WatchMessage, "watch-result">(child, "watch-result", collectTimeoutMs + resultGraceMs, `watch client ${client} result`),
    );
    for (const child of children) child.send({ type: "collect", revisions, sentNs, timeoutMs: collectTimeoutMs } satisfies WatchMessage);
    const results = await Promise.all(answers);
    const after = await options.sample(false);
    for (const child of children) child.send({ type: "stop" } satisfies WatchMessage);

    const latencies = mergeSorted(results.map((r) => r.latenciesNs));
    const firstSent = sentNs.reduce((min, ns) => Math.min(min, ns), Number.POSITIVE_INFINITY);
    const lastReceipt = results.reduce((max, r) => Math.max(max, r.lastReceiptNs), 0);
    const firstError = results.find((r) => r.firstError !== undefined)?.firstError;
    const result: WatchResult = {
      writes: count,
      streams: settings.streams,
      expected: results.reduce((sum, r) => sum + r.expected, 0),
      delivered: latencies.length,
      failedStreams: results.reduce((sum, r) => sum + r.failedStreams, 0),
      ...(firstError !== undefined ? { firstError } : {}),
      clientCpuMicros: results.reduce((sum, r) => sum + r.cpuMicros, 0),
      deliveriesPerSecond: latencies.length / ((lastReceipt - firstSent) / 1e9),
      p50Ms: nearestRank(latencies, 50) / 1e6,
      p90Ms: nearestRank(latencies, 90) / 1e6,
      p99Ms: nearestRank(latencies, 99) / 1e6,
      maxMs: nearestRank(latencies, 100) / 1e6,
    };
    return { result, idle, opened, after };
  } finally {
    await Promise.all(children.map((child) => reapChild(child, 5_000)));
  }
}
