import { create } from "@bufbuild/protobuf";
import {
  MirrorEventType,
  MirrorService,
  WatchMirrorsResponseSchema,
  type WatchMirrorsResponse,
} from "../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { InvalidFieldError } from "../core/errors.js";
import { analyzeDiffs } from "../core/mirror/analysis.js";
import { resolveDispatchBatchSize, resolveDrainLimit } from "../core/mirror/buffer-rules.js";
import { shouldMirror } from "../core/mirror/decision.js";
import { compareResponses } from "../core/mirror/diff.js";
import { encodeCapturePayload, type MirrorLimits } from "../core/mirror/model.js";
import { resolveRateMultiplier } from "../core/mirror/replay.js";
import { checkJson, validateMirrorConfigInput, validateMirrorId } from "../core/mirror/validation.js";
import type { MirrorCaptureCount, MirrorEvent, MirrorStore } from "../store/mirror-store.js";
import type { Dispatcher } from "../shadow/dispatcher.js";
import type { WatchHub } from "../watch/watch-hub.js";
import { createChangeRenderer } from "./change-renderer.js";
import { streamWatch } from "./watch-stream.js";
import {
  jsonOfValue,
  mirrorConfigInput,
  renderAnalysis,
  renderFieldDiff,
  renderMirrorConfig,
  renderMirroredRequest,
  renderMirrorResult,
  validateCapture,
} from "./mirror-mapping.js";
import { captureStreamSpec } from "./offload-specs.js";
import { offloadableStream } from "./offloaded-streams.js";
import { registerService, type ServiceRegistration } from "./service-registration.js";

/** Captures of one CaptureStream written but not yet committed, at most; more wait for the oldest. */
const maxCapturesInFlight = 1024;

const eventTypes: Record<MirrorEvent["kind"], MirrorEventType> = {
  added: MirrorEventType.ADDED,
  updated: MirrorEventType.UPDATED,
  removed: MirrorEventType.REMOVED,
};

/** What {@link createMirrorService} serves from. */
export interface MirrorServiceOptions {
  readonly store: MirrorStore;
  /** The mirror-config watch hub, fed from the store's revision log. */
  readonly hub: WatchHub<MirrorEvent>;
  readonly dispatcher: Dispatcher;
  readonly limits: MirrorLimits;
  /** The server's clock (epoch ms). */
  readonly now: () => number;
}

/**
 * `latticeforge.mirror.v1.MirrorService`: each handler checks its request,
 * calls the store, the dispatcher or the mirror core, and renders the
 * answer. Errors are the core's typed errors, mapped at the edge.
 */
export function createMirrorService(options: MirrorServiceOptions): ServiceRegistration {
  const { store, hub, dispatcher, limits, now } = options;
  const mirrorIdOf = (mirrorId: string, field = "mirror_id"): string => {
    validateMirrorId(mirrorId, field);
    return mirrorId;
  };
  const renderChange = createChangeRenderer<MirrorEvent, WatchMirrorsResponse>((change) =>
    create(WatchMirrorsResponseSchema, {
      message: {
        case: "change",
        value: {
          revision: BigInt(change.revision),
          events: change.events.map((event) => ({ type: eventTypes[event.kind], mirror: renderMirrorConfig(event.config) })),
        },
      },
    }),
  );

  return registerService(MirrorService, {
    async addMirror(request) {
      if (request.mirror === undefined) throw new InvalidFieldError("mirror", "is required");
      const config = validateMirrorConfigInput(mirrorConfigInput(request.mirror), now(), limits, "mirror");
      const { result, revision } = await store.add(config);
      return { mirror: renderMirrorConfig(result), revision: BigInt(revision) };
    },

    async removeMirror(request) {
      const { revision } = await store.remove(mirrorIdOf(request.mirrorId));
      return { revision: BigInt(revision) };
    },

    async enableMirror(request) {
      const { result, revision } = await store.setEnabled(mirrorIdOf(request.mirrorId), true);
      return { mirror: renderMirrorConfig(result), revision: BigInt(revision) };
    },

    async disableMirror(request) {
      const { result, revision } = await store.setEnabled(mirrorIdOf(request.mirrorId), false);
      return { mirror: renderMirrorConfig(result), revision: BigInt(revision) };
    },

    listMirrors() {
      return { mirrors: store.mirrors().map(renderMirrorConfig), revision: BigInt(store.log.currentRevision) };
    },

    getMirror(request) {
      return { mirror: renderMirrorConfig(store.mirror(mirrorIdOf(request.mirrorId))) };
    },

    shouldMirror(request) {
      const config = store.mirror(mirrorIdOf(request.mirrorId));
      const decision = shouldMirror(config, {
        intent: request.intent,
        requestId: request.requestId,
        traceId: request.traceId,
        ...(request.sampleSeed !== undefined ? { sampleSeed: request.sampleSeed } : {}),
      });
      return { mirror: decision.mirror, reason: decision.detail };
    },

    async capture(request) {
      const mirrored = validateCapture(request, now(), limits, "");
      return { mirrors: await store.capture(encodeCapturePayload(mirrored)) };
    },

    captureStream: offloadableStream(captureStreamSpec, () => ({ nowMs: now(), limits }), async (captures) => {
      const totals = new Map<string, { queued: number; dropped: number }>();
      const add = (counts: readonly MirrorCaptureCount[]): void => {
        for (const { mirrorId, queued, dropped } of counts) {
          const total = totals.get(mirrorId) ?? { queued: 0, dropped: 0 };
          total.queued += queued;
          total.dropped += dropped;
          totals.set(mirrorId, total);
        }
      };
      // Captures arrive checked (on the gRPC port by a decode worker, a
      // chunk at a time) and are written without waiting for each commit,
      // so one stream fills group-commit batches (the store writes the
      // captures queued before a commit together); at most
      // maxCapturesInFlight wait at once. A failure ends the call, once the
      // captures before it were written: an invalid capture keeps every
      // capture before it (unless their write failed: then the call fails
      // with that store error); a store error keeps those committed before
      // it and fails the ones that shared its write. A store error is noted
      // when it happens (never left as an unhandled rejection while the
      // stream waits for its next message) and ends the call at the next
      // message or at the end.
      const inFlight: Promise<void>[] = [];
      let failure: { readonly error: unknown } | undefined;
      const noteFailure = (error: unknown): void => {
        failure ??= { error };
      };
      let count = 0;
      try {
        for await (const mirrored of captures) {
          if (failure !== undefined) throw failure.error;
          count++;
          inFlight.push(store.capture(mirrored).then(add, noteFailure));
          if (inFlight.length >= maxCapturesInFlight) await inFlight.shift();
        }
      } catch (error) {
        await Promise.all(inFlight);
        throw failure?.error ?? error;
      }
      await Promise.all(inFlight);
      if (failure !== undefined) throw failure.error;
      return {
        captures: count,
        mirrors: [...totals]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([mirrorId, total]) => ({ mirrorId, ...total })),
      };
    }),

    pendingCount(request) {
      const mirrorId = request.mirrorId === "" ? undefined : mirrorIdOf(request.mirrorId);
      return { pending: BigInt(store.pendingCount(mirrorId)) };
    },

    async drain(request) {
      const limit = resolveDrainLimit(request.limit, limits);
      const drained = await store.drain(mirrorIdOf(request.mirrorId), limit);
      return { requests: drained.map(renderMirroredRequest) };
    },

    stats() {
      return {
        mirrors: store.mirrors().map(({ mirrorId }) => {
          const stats = store.mirrorStats(mirrorId);
          return {
            mirrorId,
            captured: BigInt(stats.captured),
            dropped: BigInt(stats.dropped),
            pending: BigInt(stats.pending),
            dispatched: BigInt(stats.dispatched),
            failed: BigInt(stats.failed),
            diffs: BigInt(stats.diffs),
          };
        }),
      };
    },

    async dispatch(request) {
      const batchSize = resolveDispatchBatchSize(request.batchSize, limits);
      const rateMultiplier = resolveRateMultiplier(request.rateMultiplier);
      const results = await dispatcher.dispatch(mirrorIdOf(request.mirrorId), batchSize, rateMultiplier);
      return { results: results.map(renderMirrorResult) };
    },

    compareResponses(request) {
      const production = jsonOfValue(request.production, "production") ?? null;
      const shadow = jsonOfValue(request.shadow, "shadow") ?? null;
      checkJson(production, Number.POSITIVE_INFINITY, "production");
      checkJson(shadow, Number.POSITIVE_INFINITY, "shadow");
      const comparison = compareResponses(production, shadow, request.ignoreFields);
      return {
        hasDiff: comparison.hasDiff,
        diffSummary: comparison.summary ?? "",
        diffs: comparison.diffs.map(renderFieldDiff),
      };
    },

    analyzeDiffs(request) {
      const tally = store.tally(mirrorIdOf(request.mirrorId));
      const noise = {
        ...(request.noiseRelative !== undefined ? { relative: request.noiseRelative } : {}),
        ...(request.noiseAbsolute !== undefined ? { absolute: request.noiseAbsolute } : {}),
      };
      return renderAnalysis(
        analyzeDiffs(tally, { ...(request.threshold !== undefined ? { threshold: request.threshold } : {}), noise }),
      );
    },

    watchMirrors(request, ctx) {
      return streamWatch(
        hub,
        { startRevision: request.startRevision, matches: () => true, filterKey: "", snapshot: () => store.mirrors(), signal: ctx.signal },
        {
          snapshot: (message) => [
            create(WatchMirrorsResponseSchema, {
              message: {
                case: "snapshot",
                value: { revision: BigInt(message.revision), mirrors: message.snapshot.map(renderMirrorConfig), reset: message.reset },
              },
            }),
          ],
          change: renderChange,
          progress: (revision) => create(WatchMirrorsResponseSchema, { message: { case: "progress", value: { revision } } }),
        },
      );
    },
  });
}

