/**
 * The watch client process (forked by the watch runner, never imported):
 * holds `streams` watches of a scenario open on `⌈streams / streamsPerChannel⌉`
 * grpc-js channels, each channel its own HTTP/2 connection, and notes the
 * revision and `process.hrtime` of every delivery. `process.hrtime` reads
 * CLOCK_MONOTONIC, which every process on the machine shares, so a receipt
 * time here and a send time taken by the parent are on one clock.
 *
 * Protocol: the job arrives as JSON in argv[2]; the client opens every
 * stream and sends `watching` once each has its first message; `collect`
 * brings the revision and send time of every write; the client waits until
 * every stream saw the last one (or the timeout), answers with the latency of
 * every (write, stream) pair, and on `stop` cancels the streams and exits.
 */
import { Client, credentials } from "@grpc/grpc-js";
import { setTimeout as sleep } from "node:timers/promises";
import { nextMessage, runChild, sendToParent } from "./ipc.js";
import type { WatchClientResult, WatchJob, WatchMessage } from "./watch-protocol.js";
import { loadWatchScenario, type WatchSink } from "./watch-scenario.js";

/** How long a channel may take to connect. */
const connectTimeoutMs = 10_000;
/** How long every stream together may take to get its first message. */
const establishTimeoutMs = 60_000;
/** The parent bounds every run; this only ends a client the parent forgot. */
const parentTimeoutMs = 3_600_000;
/** How often the client checks whether every stream saw the last write. */
const pollMs = 10;
/** HTTP/2 flow-control window of each channel's connection (and initial window of its streams). */
const connectionWindowBytes = 16 * 1024 * 1024;

/**
 * (revision, receipt time) of every delivery, appended to preallocated
 * arrays that double when full: recording costs two stores, no allocation.
 */
class Deliveries {
  revisions: Float64Array = new Float64Array(1 << 16);
  receivedNs: Float64Array = new Float64Array(1 << 16);
  count = 0;

  add(revision: number, receivedNs: number): void {
    if (this.count === this.revisions.length) {
      this.revisions = grow(this.revisions);
      this.receivedNs = grow(this.receivedNs);
    }
    this.revisions[this.count] = revision;
    this.receivedNs[this.count++] = receivedNs;
  }
}

function grow(array: Float64Array): Float64Array {
  const grown = new Float64Array(array.length * 2);
  grown.set(array);
  return grown;
}

runChild(async () => {
  const job = JSON.parse(process.argv[2] ?? "") as WatchJob;
  const scenario = await loadWatchScenario(job.scenario);
  const channels = Array.from(
    { length: Math.ceil(job.streams / job.streamsPerChannel) },
    () =>
      new Client(job.address, credentials.createInsecure(), {
        // A subchannel pool per channel: grpc-js otherwise shares one
        // connection between channels with the same target and options.
        "grpc.use_local_subchannel_pool": 1,
        // HTTP/2's default 64 KiB connection window is less than one write
        // fanned out to 250 streams (~300-450 bytes each): the server would
        // stall mid-fan-out until this process sent WINDOW_UPDATEs.
        "grpc-node.flow_control_window": connectionWindowBytes,
      }),
  );
  await Promise.all(
    channels.map(
      (channel) =>
        new Promise<void>((resolve, reject) => {
          channel.waitForReady(Date.now() + connectTimeoutMs, (error) => (error === undefined ? resolve() : reject(error)));
        }),
    ),
  );

  const deliveries = new Deliveries();
  /** The highest revision each stream has seen. */
  const lastSeen = new Float64Array(job.streams);
  let stopping = false;
  let failedStreams = 0;
  let firstError: string | undefined;
  let readyStreams = 0;
  let established!: () => void;
  let notEstablished!: (error: Error) => void;
  const allReady = new Promise<void>((resolve, reject) => {
    established = resolve;
    notEstablished = reject;
  });
  const cancels = Array.from({ length: job.streams }, (_, stream) => {
    let ready = false;
    const sink: WatchSink = {
      ready: () => {
        if (ready) return;
        ready = true;
        if (++readyStreams === job.streams) established();
      },
      delivered: (revision) => {
        deliveries.add(revision, Number(process.hrtime.bigint()));
        if (revision > (lastSeen[stream] as number)) lastSeen[stream] = revision;
      },
      failed: (error) => {
        if (stopping) return;
        failedStreams++;
        firstError ??= error.message;
        if (!ready) notEstablished(new Error(`stream ${stream} failed before it was established: ${error.message}`));
      },
    };
    return scenario.open(channels[Math.floor(stream / job.streamsPerChannel)] as Client, sink, job.firstStream + stream);
  });
  const timer = setTimeout(() => notEstablished(new Error(`${job.streams - readyStreams} of ${job.streams} streams not established within ${establishTimeoutMs} ms`)), establishTimeoutMs);
  await allReady.finally(() => clearTimeout(timer));

  const collected = nextMessage<WatchMessage, "collect">(process, "collect", parentTimeoutMs, "waiting for collect");
  await sendToParent({ type: "watching" } satisfies WatchMessage);
  const watchingCpu = process.cpuUsage();
  const { revisions, sentNs, timeoutMs } = await collected;
  // The last revision each stream is to see, and how many (write, stream) pairs there are.
  const lastExpected = new Float64Array(job.streams);
  let expected = 0;
  for (let stream = 0; stream < job.streams; stream++) {
    for (let write = 0; write < revisions.length; write++) {
      if (scenario.sees !== undefined && !scenario.sees(job.firstStream + stream, write)) continue;
      expected++;
      lastExpected[stream] = Math.max(lastExpected[stream] as number, revisions[write] as number);
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && lastSeen.some((revision, stream) => revision < (lastExpected[stream] as number))) await sleep(pollMs);

  const sentAt = new Map<number, number>();
  revisions.forEach((revision, i) => sentAt.set(revision, sentNs[i] as number));
  const latenciesNs = new Float64Array(deliveries.count);
  let matched = 0;
  let lastReceiptNs = 0;
  for (let i = 0; i < deliveries.count; i++) {
    const sent = sentAt.get(deliveries.revisions[i] as number);
    if (sent === undefined) continue; // a change the bench did not write
    const received = deliveries.receivedNs[i] as number;
    latenciesNs[matched++] = received - sent;
    lastReceiptNs = Math.max(lastReceiptNs, received);
  }
  const cpu = process.cpuUsage(watchingCpu);
  const result: WatchClientResult = {
    type: "watch-result",
    latenciesNs: latenciesNs.slice(0, matched),
    expected,
    failedStreams,
    ...(firstError !== undefined ? { firstError } : {}),
    lastReceiptNs,
    cpuMicros: cpu.user + cpu.system,
  };
  const stopped = nextMessage<WatchMessage, "stop">(process, "stop", parentTimeoutMs, "waiting for stop");
  await sendToParent(result);
  await stopped;
  stopping = true;
  for (const cancel of cancels) cancel();
  for (const channel of channels) channel.close();
  process.exit(0);
});
