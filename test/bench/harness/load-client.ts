/**
 * The load generator process (forked by the load runner, never imported):
 * a grpc-js client on one HTTP/2 connection keeping `concurrency` unary calls
 * of a scenario in flight — each completion immediately issues the next call
 * (closed loop) — with per-call latency taken by `process.hrtime.bigint()`,
 * which includes decoding the response and the scenario's `consume`. A
 * scenario with `messagesPerCall` makes each call a client stream of that
 * many requests instead (written as fast as the stream drains, then
 * half-closed); its latency runs from opening the stream to the answer. With a
 * `ratePerSecond` the client is paced instead (open loop): call `n` is due
 * `n / rate` seconds after its start, and `concurrency` caps the calls in
 * flight: a call due while the cap is reached is skipped, not postponed, so
 * a server that falls behind gets no burst of catch-up calls; it shows as a
 * rate below the one asked for.
 *
 * Protocol: the job arrives as JSON in argv[2]; the client connects, starts
 * the load and sends `started`; `measure` starts the window, `stop` ends it,
 * and the client answers with its result and exits.
 */
import type { Message } from "@bufbuild/protobuf";
import { Client, credentials, type ClientWritableStream, type MethodDefinition, type ServiceError } from "@grpc/grpc-js";
import { once } from "node:events";
import { grpcServiceDefinition } from "../../../client/grpc-definition.js";
import { runChild, sendToParent } from "./ipc.js";
import type { LoadJob, LoadMessage } from "./load-protocol.js";
import { MeasuredWindow } from "./measured-window.js";
import { loadScenario } from "./scenario.js";

/** How long the client waits for the connection to become ready. */
const connectTimeoutMs = 5_000;
/** How long the calls in flight at `stop` may take to finish before the client answers anyway. */
const drainTimeoutMs = 5_000;
/** The parent bounds every run; this only ends a client the parent forgot. */
const parentTimeoutMs = 3_600_000;

runChild(async () => {
  const job = JSON.parse(process.argv[2] ?? "") as LoadJob;
  const scenario = await loadScenario(job.scenario);
  const method = grpcServiceDefinition(scenario.service)[scenario.method] as MethodDefinition<Message, Message> | undefined;
  const messagesPerCall = scenario.messagesPerCall;
  const streaming = messagesPerCall !== undefined;
  if (method === undefined || method.requestStream !== streaming || method.responseStream) {
    throw new Error(`${scenario.service.typeName}.${scenario.method} is not a ${streaming ? "client-streaming" : "unary"} method`);
  }
  const units = scenario.units?.bind(scenario);
  // Counting units needs the answer decoded, raw responses or not.
  const deserialize: (bytes: Buffer) => unknown = job.rawResponses && units === undefined ? (bytes) => bytes : method.responseDeserialize;
  // A scenario may hand over requests already encoded; they are sent as they are.
  const serialize = (request: Message | Uint8Array): Buffer =>
    request instanceof Uint8Array ? Buffer.from(request.buffer, request.byteOffset, request.byteLength) : method.requestSerialize(request);
  const consume = job.rawResponses ? undefined : scenario.consume?.bind(scenario);
  const client = new Client(job.address, credentials.createInsecure(), {});
  await new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + connectTimeoutMs, (error) => (error === undefined ? resolve() : reject(error)));
  });

  const window = new MeasuredWindow();
  let pacer: NodeJS.Timeout | undefined;
  // Listen before announcing the start: the parent may answer at once.
  const measured = window.run({ drainTimeoutMs, parentTimeoutMs, onStop: () => clearInterval(pacer) });
  let sequence = 0;
  /** Writes `count` requests into a client stream, waiting while its buffer is full, then half-closes it; stops if the call ends first. */
  const writeAll = async (call: ClientWritableStream<Message | Uint8Array>, count: number): Promise<void> => {
    let over = false;
    const ended = new Promise<void>((resolve) =>
      call.once("status", () => {
        over = true;
        resolve();
      }),
    );
    for (let written = 0; written < count && !over; written++) {
      if (!call.write(scenario.request(sequence++, job.client))) await Promise.race([once(call, "drain"), ended]);
    }
    if (!over) call.end();
  };
  const issue = (): void => {
    const startedAt = window.begin();
    const done = (error: ServiceError | null, response?: unknown): void => {
      if (error === null && consume !== undefined) consume(response as Message);
      const carried = error === null && units !== undefined ? units(response as Message) : undefined;
      window.end(startedAt, error === null ? undefined : `${error.code} ${error.details}`, carried);
      if (!window.stopping && job.ratePerSecond === undefined) issue();
    };
    if (messagesPerCall === undefined) {
      client.makeUnaryRequest<Message | Uint8Array, unknown>(method.path, serialize, deserialize, scenario.request(sequence++, job.client), done);
    } else {
      void writeAll(client.makeClientStreamRequest<Message | Uint8Array, unknown>(method.path, serialize, deserialize, done), messagesPerCall);
    }
  };
  if (job.ratePerSecond === undefined) {
    for (let i = 0; i < job.concurrency; i++) issue();
  } else {
    // Paced: the calls due by now (rate × time since the start); those over the cap are skipped.
    const rate = job.ratePerSecond;
    const pacedFrom = process.hrtime.bigint();
    let paced = 0;
    const pace = (): void => {
      const due = Math.floor((Number(process.hrtime.bigint() - pacedFrom) / 1e9) * rate) + 1;
      for (; paced < due; paced++) if (window.inFlight < job.concurrency) issue();
    };
    pace();
    pacer = setInterval(pace, Math.max(1, Math.min(10, 500 / rate)));
  }
  await sendToParent({ type: "started" } satisfies LoadMessage);
  const result = await measured;
  client.close();
  await sendToParent(result);
  process.exit(0);
});
