import { create } from "@bufbuild/protobuf";
import {
  GetTraceResponseSchema,
  IngestBatchResponseSchema,
  TraceCollectorService,
  WatchAnomaliesResponseSchema,
  type WatchAnomaliesResponse,
} from "../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { resolveLimit } from "../core/request-limits.js";
import { FailedPreconditionError, InvalidFieldError, LimitExceededError, NotFoundError } from "../core/errors.js";
import type { AnomalyEvent } from "../core/tracing/anomalies.js";
import { assembleTrace } from "../core/tracing/assembly.js";
import { criticalPath } from "../core/tracing/critical-path.js";
import { graphOfCalls } from "../core/tracing/dependency-graph.js";
import { foldedStacks, traceToFlamegraph } from "../core/tracing/flamegraph.js";
import { latencyBreakdown } from "../core/tracing/latency-breakdown.js";
import { nsToMs, type CollectorLimits, type Span, type TraceTree } from "../core/tracing/model.js";
import { defaultPercentiles, percentiles } from "../core/tracing/percentiles.js";
import { sloComplianceReport } from "../core/tracing/slo.js";
import { defaultSlowSpanLimit, slowSpans } from "../core/tracing/slow-spans.js";
import { validateSpanId, validateSpanInput, validateTraceId } from "../core/tracing/validation.js";
import type { TracingStore } from "../store/tracing-store.js";
import type { WatchHub } from "../watch/watch-hub.js";
import { createChangeRenderer } from "./change-renderer.js";
import { offloadable } from "./offloaded-decoding.js";
import { precodedResponse } from "./precoded-response.js";
import { encodeGetTraceResponse } from "./tracing-wire.js";
import { ingestBatchSpec } from "./offload-specs.js";
import { streamWatch } from "./watch-stream.js";
import { registerService, type ServiceRegistration } from "./service-registration.js";
import {
  dropReasonEnum,
  renderAnomalyEvent,
  renderCriticalPathSpan,
  renderFlamegraph,
  renderSpan,
  renderTraceSummary,
  spanInput,
  timestampToNs,
} from "./tracing-mapping.js";

/** What {@link createTracingService} serves from. */
export interface TracingServiceOptions {
  readonly store: TracingStore;
  /** The anomaly watch hub, fed from the store's anomaly log. */
  readonly hub: WatchHub<AnomalyEvent>;
  readonly limits: CollectorLimits;
  /** The collector's clock (epoch ms). */
  readonly now: () => number;
}

/**
 * `latticeforge.tracing.v1.TraceCollectorService`: each handler checks its
 * request, calls the store (ingest, reads of one trace's spans or of the
 * per-trace rows) and the tracing core (assembly and analyses), and renders
 * the answer. An analysis of one trace reads only that trace's spans.
 */
export function createTracingService(options: TracingServiceOptions): ServiceRegistration {
  const { store, hub, limits, now } = options;

  /** The trace's spans; NOT_FOUND when it has none. */
  const spansOf = (traceId: string, field = "trace_id"): Span[] => {
    validateTraceId(traceId, field);
    const spans = store.traceSpans(traceId);
    if (spans.length === 0) throw new NotFoundError(`trace ${traceId} not found`);
    return spans;
  };
  /** The assembled trace; NOT_FOUND, or FAILED_PRECONDITION without a root. */
  const treeOf = (traceId: string): TraceTree => assembleTrace(spansOf(traceId), now());

  const renderChange = createChangeRenderer<AnomalyEvent, WatchAnomaliesResponse>((change, matches) =>
    create(WatchAnomaliesResponseSchema, {
      message: {
        case: "change",
        value: { revision: BigInt(change.revision), events: change.events.filter(matches).map(renderAnomalyEvent) },
      },
    }),
  );

  return registerService(TraceCollectorService, {
    async ingest(request) {
      if (request.span === undefined) throw new InvalidFieldError("span", "is required");
      const span = validateSpanInput(spanInput(request.span, "span"), "span");
      const decision = await store.ingest(span, now());
      if (decision.outcome === "dropped") {
        if (decision.reason === "trace_full") throw new LimitExceededError(decision.message);
        throw new FailedPreconditionError(decision.message);
      }
      return { duplicate: decision.outcome === "duplicate" };
    },

    ingestBatch: offloadable(ingestBatchSpec, async (spans) => {
      const { counts, decisions } = await store.ingestBatch(spans, now());
      return create(IngestBatchResponseSchema, {
        ingested: counts.ingested,
        dropped: counts.dropped,
        duplicates: counts.duplicates,
        droppedSpans: decisions.flatMap((decision, index) =>
          decision.outcome === "dropped"
            ? [
                {
                  index,
                  traceId: spans[index]!.traceId,
                  spanId: spans[index]!.spanId,
                  reason: dropReasonEnum[decision.reason],
                  message: decision.message,
                },
              ]
            : [],
        ),
      });
    }),

    getTrace(request) {
      return precodedResponse(GetTraceResponseSchema, encodeGetTraceResponse(treeOf(request.traceId)));
    },

    getSpan(request) {
      validateTraceId(request.traceId, "trace_id");
      validateSpanId(request.spanId, "span_id");
      const span = store.getSpan(request.traceId, request.spanId);
      if (span === undefined) throw new NotFoundError(`span ${request.spanId} of trace ${request.traceId} not found`);
      return { span: renderSpan(span) };
    },

    children(request) {
      validateTraceId(request.traceId, "trace_id");
      validateSpanId(request.parentSpanId, "parent_span_id");
      if (store.traceRecord(request.traceId) === undefined) throw new NotFoundError(`trace ${request.traceId} not found`);
      return { spans: store.children(request.traceId, request.parentSpanId).map(renderSpan) };
    },

    latencyBreakdown(request) {
      return {
        breakdowns: latencyBreakdown(spansOf(request.traceId)).map((entry) => ({
          serviceName: entry.serviceName,
          totalMs: BigInt(entry.totalMs),
          selfMs: BigInt(entry.selfMs),
          spanCount: entry.spanCount,
          errorRate: entry.errorRate,
        })),
      };
    },

    criticalPath(request) {
      const path = criticalPath(treeOf(request.traceId));
      return { spans: path.spans.map(renderCriticalPathSpan), totalMs: BigInt(nsToMs(path.totalNs)) };
    },

    anomalousTraces(request) {
      const limit = resolveLimit(request.limit, 100, 1000, "limit");
      return {
        traces: store.anomalousCandidates(limits.anomalyThresholdMs, limit).map(renderTraceSummary),
        thresholdMs: BigInt(Math.floor(limits.anomalyThresholdMs)),
      };
    },

    serviceLatencyPercentiles(request) {
      const service = requiredText(request.serviceName, "service_name");
      const requested = request.percentiles.length > 0 ? request.percentiles : defaultPercentiles;
      const durations = store.serviceDurationsMs(service, timestampToNs(request.since, "since"));
      return {
        percentiles: percentiles(durations, requested).map(({ percentile, value }) => ({
          percentile,
          latencyMs: BigInt(Math.floor(value)),
        })),
        sampleCount: durations.length,
      };
    },

    incompleteTraces(request) {
      return { traceIds: store.incompleteTraceIds(resolveLimit(request.limit, 1000, 10_000, "limit")) };
    },

    async pruneExpired() {
      return { pruned: await store.pruneExpired(now(), limits.traceTtlMs) };
    },

    flamegraph(request) {
      const tree = treeOf(request.traceId);
      return { root: renderFlamegraph(traceToFlamegraph(tree)), folded: foldedStacks(tree) };
    },

    sloComplianceReport(request) {
      const slos = Object.keys(request.sloByService).length > 0 ? request.sloByService : limits.serviceSlosMs;
      const since = timestampToNs(request.since, "since");
      const durations = new Map(Object.keys(slos).map((service) => [service, store.serviceDurationsMs(service, since)]));
      return {
        services: sloComplianceReport(durations, slos).map((line) => ({
          serviceName: line.serviceName,
          sloMs: line.sloMs,
          ...(line.p99Ms !== undefined ? { p99Ms: BigInt(Math.floor(line.p99Ms)) } : {}),
          compliancePct: line.compliancePct,
          violations: line.violations,
          sampleCount: line.sampleCount,
        })),
      };
    },

    dependencyGraph(request) {
      const since = timestampToNs(request.since, "since");
      const nodes = graphOfCalls(store.dependencyEdges(store.serviceNames(), since));
      return {
        services: nodes.map((node) => ({
          serviceName: node.serviceName,
          downstream: node.downstream.map((edge) => ({ serviceName: edge.serviceName, callCount: BigInt(edge.callCount) })),
        })),
      };
    },

    slowSpanAnalysis(request) {
      if (!Number.isFinite(request.thresholdMs) || request.thresholdMs < 0) {
        throw new InvalidFieldError("threshold_ms", `must be a finite number >= 0, got ${request.thresholdMs}`);
      }
      const limit = resolveLimit(request.limit, defaultSlowSpanLimit, 10_000, "limit");
      const tree = treeOf(request.traceId);
      return {
        spans: slowSpans(tree, request.thresholdMs, limit).map((slow) => ({
          span: renderSpan(slow.span),
          durationMs: BigInt(slow.durationMs),
          traceShare: slow.traceShare,
          selfMs: BigInt(slow.selfMs),
          onCriticalPath: slow.onCriticalPath,
        })),
      };
    },

    watchAnomalies(request, ctx) {
      const service = request.serviceName;
      if (request.minDurationMs < 0n) {
        throw new InvalidFieldError("min_duration_ms", `must be >= 0, got ${request.minDurationMs}`);
      }
      const minDurationMs = Number(request.minDurationMs);
      return streamWatch(
        hub,
        {
          startRevision: request.startRevision,
          matches: (event: AnomalyEvent): boolean =>
            event.anomaly.totalDurationMs >= minDurationMs && (service === "" || event.anomaly.rootServiceName === service),
          filterKey: `${service}\n${minDurationMs}`,
          snapshot: () => undefined,
          signal: ctx.signal,
        },
        {
          snapshot: (message) => [
            create(WatchAnomaliesResponseSchema, {
              message: { case: "started", value: { revision: BigInt(message.revision), reset: message.reset } },
            }),
          ],
          change: renderChange,
          progress: (revision) => create(WatchAnomaliesResponseSchema, { message: { case: "progress", value: { revision } } }),
        },
      );
    },
  });
}

function requiredText(value: string, field: string): string {
  if (value === "") throw new InvalidFieldError(field, "is required");
  return value;
}
