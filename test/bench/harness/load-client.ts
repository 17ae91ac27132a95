/**
 * The load generator process (forked by the load runner, never imported):
 * a grpc-js client on one HTTP/2 connection keeping `concurrency` unary calls
 * of a scenario in flight — each completion immediately issues the next call
 * (closed loop) — with per-call latency taken by `process.hrtime.bigint()`,
 * which includes decoding the response and the scenario's `consume`.
 *
 * Protocol: the job arrives as JSON in argv[2]; the client connects, starts
 * the load and sends `started`; `measure` starts the window, `stop` ends it,
 * and the client answers with its result and exits.
 */
import type { Message } from "@bufbuild/protobuf";
import { Client, credentials, type MethodDefinition, type ServiceError } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../../client/grpc-definition.js";
import { nextMessage, runChild, sendToParent } from "./ipc.js";
import { LatencyRecorder } from "./latency.js";
import type { LoadClientResult, LoadJob, LoadMessage } from "./load-protocol.js";
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
  if (method === undefined || method.requestStream || method.responseStream) {
    throw new Error(`${scenario.service.typeName}.${scenario.method} is not a unary method`);
  }
  const deserialize: (bytes: Buffer) => unknown = job.rawResponses ? (bytes) => bytes : method.responseDeserialize;
  const consume = job.rawResponses ? undefined : scenario.consume?.bind(scenario);
  const client = new Client(job.address, credentials.createInsecure(), {});
  await new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + connectTimeoutMs, (error) => (error === undefined ? resolve() : reject(error)));
  });

  const recorder = new LatencyRecorder();
  let measuring = false;
  let stopping = false;
  let inFlight = 0;
  let sequence = 0;
  let errors = 0;
  let firstError: string | undefined;
  let onDrained: (() => void) | undefined;

  const issue = (): void => {
    inFlight++;
    const startedAt = process.hrtime.bigint();
    client.makeUnaryRequest<Message, unknown>(
      method.path,
      method.requestSerialize,
      deserialize,
      scenario.request(sequence++, job.client),
      (error: ServiceError | null, response?: unknown) => {
        if (error === null && consume !== undefined) consume(response as Message);
        const elapsed = process.hrtime.bigint() - startedAt;
        inFlight--;
        if (error !== null) {
          errors++;
          firstError ??= `${error.code} ${error.details}`;
        } else if (measuring) {
          recorder.record(Number(elapsed));
        }
        if (!stopping) issue();
        else if (inFlight === 0) onDrained?.();
      },
    );
  };
  // Listen before announcing the start: the parent may answer at once.
  let windowStart = 0n;
  let windowCpu: NodeJS.CpuUsage | undefined;
  const measured = nextMessage<LoadMessage, "measure">(process, "measure", parentTimeoutMs, "waiting for measure").then(() => {
    measuring = true;
    windowStart = process.hrtime.bigint();
    windowCpu = process.cpuUsage();
  });
  const stopped = nextMessage<LoadMessage, "stop">(process, "stop", parentTimeoutMs, "waiting for stop");
  for (let i = 0; i < job.concurrency; i++) issue();
  await sendToParent({ type: "started" } satisfies LoadMessage);
  await measured;
  await stopped;
  const seconds = Number(process.hrtime.bigint() - windowStart) / 1e9;
  const cpu = process.cpuUsage(windowCpu);
  measuring = false;
  stopping = true;
  if (inFlight > 0) {
    await new Promise<void>((resolve) => {
      onDrained = resolve;
      setTimeout(resolve, drainTimeoutMs).unref();
    });
  }
  client.close();
  const result: LoadClientResult = {
    type: "result",
    ops: recorder.count,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    seconds,
    cpuMicros: cpu.user + cpu.system,
    latenciesNs: recorder.snapshot(),
  };
  await sendToParent(result);
  process.exit(0);
});
