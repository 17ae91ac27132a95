import type { DescService, Message } from "@bufbuild/protobuf";

/**
 * What a load client calls: one unary (or client-streaming) method of a
 * service and how to build request number `sequence`. A scenario lives in
 * its own module whose default export is the scenario, so that a load
 * client process can load it by URL (functions do not cross IPC). Later
 * benches add a module, not a harness.
 *
 * @example
 * const scenario: LoadScenario = {
 *   service: Registry,
 *   method: "register",
 *   request: (sequence, client) => create(RegisterRequestSchema, { instanceId: `c${client}-${sequence}` }),
 * };
 * export default scenario;
 */
export interface LoadScenario {
  readonly service: DescService;
  /**
   * The `localName` of a unary method of {@link service}, e.g. `check`, or
   * of a client-streaming one when {@link messagesPerCall} is set.
   */
  readonly method: string;
  /**
   * For a client-streaming {@link method}: each call (an op) writes this many
   * requests (`request` is asked for each, `sequence` counting messages),
   * half-closes, and ends with the server's single answer. Writes wait for
   * the stream to drain when grpc-js's buffer is full.
   */
  readonly messagesPerCall?: number;
  /**
   * Request `sequence` (0, 1, … per load client) of load client `client`
   * (0-based). Runs on the client's hot path: return a prebuilt message when
   * requests do not vary. Bytes are sent as they are: the request already
   * encoded, for requests so large that encoding each would cost the load
   * client more CPU than the server spends on it (see
   * `scenarios/tracing-batches.ts`).
   */
  request(sequence: number, client: number): Message | Uint8Array;
  /**
   * Runs on each decoded response inside the latency window, for work any
   * real client of the protocol must do before it can use an answer (e.g.
   * parse etcd's JSON values). Skipped with `--raw-responses`.
   */
  consume?(response: Message): void;
  /**
   * What an answer carries in the op's unit (e.g. the results of a Dispatch,
   * fewer than asked when the buffer runs short), summed over the window
   * into the row's `<unit>/s` instead of ops × `perOp`. Responses are
   * decoded for it even with `--raw-responses`.
   */
  units?(response: Message): number;
}

/** Loads the scenario exported as default by the compiled module at `url`. */
export async function loadScenario(url: string): Promise<LoadScenario> {
  const module = (await import(url)) as { default?: Partial<LoadScenario> };
  const scenario = module.default;
  if (
    scenario?.service === undefined ||
    typeof scenario.method !== "string" ||
    typeof scenario.request !== "function" ||
    (scenario.messagesPerCall !== undefined && !(Number.isInteger(scenario.messagesPerCall) && scenario.messagesPerCall >= 1))
  ) {
    throw new Error(`${url} has no default export shaped as a LoadScenario`);
  }
  return scenario as LoadScenario;
}
