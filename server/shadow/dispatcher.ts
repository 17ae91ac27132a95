import type { MirrorConfig, MirrorResult } from "../core/mirror/model.js";
import { buildMirrorResult } from "../core/mirror/outcome.js";
import { replayOffsets } from "../core/mirror/replay.js";
import { buildShadowRequest } from "../core/mirror/shadow-request.js";
import type { BufferedRequest, MirrorStore } from "../store/mirror-store.js";
import { ShadowClientClosedError, type ShadowClient } from "./http-shadow-client.js";

/** Options for {@link Dispatcher}. */
export interface DispatcherOptions {
  /** Shadow requests in flight per dispatch. Default 32. */
  readonly concurrency?: number;
  /** Longest replay wait between two sends, after scaling. Default 10 s. */
  readonly maxReplayWaitMs?: number;
  /** Clock in epoch ms; default Date.now. */
  readonly now?: () => number;
}

/**
 * Sends a mirror's buffered requests to its shadow (and to its secondary,
 * for the noise baseline) and records the results.
 *
 * Steps of {@link dispatch}:
 * 1. Read the mirror's oldest `batchSize` requests; they stay buffered, so a
 *    crash mid-dispatch loses none.
 * 2. Send them, at most `concurrency` at a time: as fast as possible, or, for
 *    a REPLAY mirror with a finite rate multiplier, at the captured spacing
 *    divided by it.
 * 3. Build each result with the core (success, diffs against production's
 *    response, noise against the secondary's), then remove the sent requests
 *    and record the results in one transaction.
 *
 * When the shadow client closes mid-dispatch (the server is shutting down),
 * the requests answered so far are recorded, the others stay buffered for
 * the next dispatch, and the call fails with UNAVAILABLE: a shutdown is not
 * a shadow failure.
 *
 * Dispatches of one mirror run one after another (a second call waits), so
 * no request is sent twice by overlapping calls.
 */
export class Dispatcher {
  private readonly concurrency: number;
  private readonly maxReplayWaitMs: number;
  private readonly now: () => number;
  private readonly running = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: MirrorStore,
    private readonly client: ShadowClient,
    options: DispatcherOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 32;
    this.maxReplayWaitMs = options.maxReplayWaitMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Dispatches up to `batchSize` requests of a mirror (see the class comment).
   *
   * @param rateMultiplier REPLAY pacing; `Infinity` sends as fast as possible
   * @returns the results in buffer order
   * @throws NotFoundError when the mirror is unknown; ShadowClientClosedError
   *   (after recording what was answered) when the client closed mid-dispatch
   */
  dispatch(mirrorId: string, batchSize: number, rateMultiplier: number): Promise<MirrorResult[]> {
    this.store.mirror(mirrorId);
    const previous = this.running.get(mirrorId) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.run(mirrorId, batchSize, rateMultiplier));
    this.running.set(mirrorId, run);
    void run.finally(() => {
      if (this.running.get(mirrorId) === run) this.running.delete(mirrorId);
    }).catch(() => undefined);
    return run;
  }

  private async run(mirrorId: string, batchSize: number, rateMultiplier: number): Promise<MirrorResult[]> {
    const config = this.store.mirror(mirrorId);
    const batch = this.store.oldest(mirrorId, batchSize);
    if (batch.length === 0) return [];
    const offsets =
      config.mode === "replay" && Number.isFinite(rateMultiplier)
        ? replayOffsets(batch.map((b) => b.request.mirroredAtMs), rateMultiplier, { maxWaitMs: this.maxReplayWaitMs })
        : undefined;
    const started = performance.now();
    const results = new Array<MirrorResult | undefined>(batch.length);
    let closed: ShadowClientClosedError | undefined;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batch.length && closed === undefined) {
        const index = next++;
        const offset = offsets?.[index];
        if (offset !== undefined) {
          const wait = offset - (performance.now() - started);
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
        try {
          results[index] = await this.sendOne(config, batch[index]!);
        } catch (error) {
          if (!(error instanceof ShadowClientClosedError)) throw error;
          closed = error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, batch.length) }, worker));
    if (closed === undefined) {
      await this.store.recordResults(config, batch, results as MirrorResult[]);
      return results as MirrorResult[];
    }
    const answered = batch.flatMap((buffered, i) => (results[i] === undefined ? [] : [{ buffered, result: results[i] }]));
    if (answered.length > 0) {
      await this.store.recordResults(
        config,
        answered.map((entry) => entry.buffered),
        answered.map((entry) => entry.result),
      );
    }
    throw closed;
  }

  private async sendOne(config: MirrorConfig, { request }: BufferedRequest): Promise<MirrorResult> {
    const target = { mirrorId: config.mirrorId, timeoutMs: config.timeoutMs };
    const [outcome, secondary] = await Promise.all([
      this.client.send(buildShadowRequest(request, { ...target, endpoint: config.shadowEndpoint })),
      config.secondaryEndpoint === ""
        ? undefined
        : this.client.send(buildShadowRequest(request, { ...target, endpoint: config.secondaryEndpoint })),
    ]);
    return buildMirrorResult(outcome, {
      mirror: config,
      request,
      completedAtMs: this.now(),
      ...(secondary !== undefined ? { secondary } : {}),
    });
  }
}
