import { writeFileSync } from "node:fs";
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate, type Duration } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import {
  AnomalousTracesResponseSchema,
  AnomalyEventType,
  CriticalPathResponseSchema,
  DependencyGraphResponseSchema,
  DropReason,
  FlamegraphResponseSchema,
  GetTraceResponseSchema,
  IncompleteTracesResponseSchema,
  IngestBatchResponseSchema,
  LatencyBreakdownResponseSchema,
  PruneExpiredResponseSchema,
  ServiceLatencyPercentilesResponseSchema,
  SloComplianceReportResponseSchema,
  SlowSpanAnalysisResponseSchema,
  SpanSchema,
  TraceCollectorService,
  WatchAnomaliesResponseSchema,
  type DroppedSpan,
  type FlamegraphNode,
  type Span,
  type TraceAnomaly,
} from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { formatMs, renderWaterfall, spanDurationNs, waterfallBarWidth } from "../../trace-waterfall.js";
import { clientFlagsHelp, UsageError, type ClientInvocation } from "../client-flags.js";
import type { Command } from "../command.js";
import { integerFlag, numberFlag, requiredFlag, sinceFlag } from "../flag-values.js";
import { InputError, inputFailure, readJsonFile } from "../input-file.js";
import { runRevisionWatch } from "../revision-watch.js";
import { createServiceCommand } from "../service-command.js";
import { percent, plural } from "../text-format.js";

const usage = `Usage: latticeforge trace <subcommand> [flags]

Subcommands:
  get TRACE_ID [--ids] [--bar-width N]    the trace as a waterfall: offset, timeline bar, duration, span
  critical-path TRACE_ID                  the spans that determine its end-to-end latency
  breakdown TRACE_ID                      time per service: total, self (children's time removed), errors
  flamegraph TRACE_ID [--format folded|json] [--out PATH]
                                          folded stacks (flamegraph.pl, inferno, speedscope; self time in ns)
                                          or a d3-flame-graph JSON tree (inclusive ns), to PATH or stdout
  slow TRACE_ID --threshold-ms N [--limit N]
                                          spans over N ms with trace share, self time, critical-path flag
  anomalies [--limit N]                   traces over the anomaly threshold, slowest first
  watch-anomalies [--service S] [--min-duration-ms N] [--from REVISION]
                                          print anomalies live; resumes by revision after a dropped connection
  percentiles SERVICE [--p 50,90,99] [--since AGE|TIME]
                                          a service's span latency percentiles (nearest rank)
  slo [--slo SERVICE=MS]... [--since AGE|TIME]
                                          p99 and compliance per service (default SLOs: the server's)
  deps [--since AGE|TIME]                 which services call which, with call counts
  incomplete [--limit N]                  traces with spans but no root span yet
  prune                                   remove expired traces now
  ingest --file PATH|-                    store spans from a JSON array of Span (protobuf JSON), via IngestBatch

--since takes an age (90s, 15m, 2h, 7d) or an RFC 3339 time. --bar-width defaults to the terminal's
width, or 60 when stdout is not a terminal. With --json every subcommand prints the RPC's response as
protobuf JSON (flamegraph --out still writes the --format file).

${clientFlagsHelp}`;

const flags = {
  ids: { type: "boolean" },
  "bar-width": { type: "string" },
  format: { type: "string" },
  out: { type: "string" },
  "threshold-ms": { type: "string" },
  limit: { type: "string" },
  service: { type: "string" },
  "min-duration-ms": { type: "string" },
  from: { type: "string" },
  p: { type: "string" },
  since: { type: "string" },
  slo: { type: "string", multiple: true },
  file: { type: "string" },
} as const;

/** Bar width of `trace get` when stdout is not a terminal. */
const pipedBarWidth = 60;

/** Most spans one IngestBatch may carry (the API's limit); larger files are sent in several batches. */
const batchSpans = 10_000;

/** `latticeforge trace …`: the TraceCollectorService from the command line. */
export const traceCommand: Command = createServiceCommand({
  summary: "show, analyse, ingest and watch traces",
  usage,
  flags,
  service: TraceCollectorService,
  run: runSubcommand,
});

type Collector = Client<typeof TraceCollectorService>;

async function runSubcommand(sub: string, cli: ClientInvocation, collector: Collector): Promise<number> {
  const call = { timeoutMs: cli.timeoutMs };
  const traceId = (): string => {
    const id = cli.positionals[0];
    if (id === undefined) throw new UsageError(`${sub} needs a TRACE_ID`);
    return id;
  };
  switch (sub) {
    case "get": {
      const id = traceId();
      const barFlag = cli.values["bar-width"];
      const fixedBarWidth = barFlag === undefined ? undefined : integerFlag(barFlag, "--bar-width", 0, 1);
      const spanIds = cli.values.ids === true;
      const res = await collector.getTrace({ traceId: id }, call);
      const tree = res.trace!;
      const barWidth =
        fixedBarWidth ?? (process.stdout.isTTY ? waterfallBarWidth(tree, process.stdout.columns ?? 80, { spanIds }) : pipedBarWidth);
      cli.output.line(renderWaterfall(tree, { barWidth, spanIds }).join("\n"), toJson(GetTraceResponseSchema, res));
      return 0;
    }
    case "critical-path": {
      const res = await collector.criticalPath({ traceId: traceId() }, call);
      const rows = res.spans.map((entry) => {
        const span = entry.span!;
        return [span.spanId, span.serviceName, span.operationName, formatMs(durationNs(entry.criticalTime)), formatMs(spanDurationNs(span))];
      });
      cli.output.table(["span", "service", "operation", "critical ms", "duration ms"], rows, toJson(CriticalPathResponseSchema, res));
      cli.output.line(`total ${res.totalMs} ms on the critical path (${plural(res.spans.length, "span")})`, undefined);
      return 0;
    }
    case "breakdown": {
      const res = await collector.latencyBreakdown({ traceId: traceId() }, call);
      const rows = res.breakdowns.map((b) => [b.serviceName, String(b.totalMs), String(b.selfMs), String(b.spanCount), percent(b.errorRate)]);
      cli.output.table(["service", "total ms", "self ms", "spans", "errors"], rows, toJson(LatencyBreakdownResponseSchema, res));
      return 0;
    }
    case "flamegraph":
      return flamegraph(cli, collector, traceId());
    case "slow": {
      const thresholdMs = numberFlag(requiredFlag(cli, "threshold-ms"), "--threshold-ms", 0);
      const res = await collector.slowSpanAnalysis({ traceId: traceId(), thresholdMs, limit: integerFlag(cli.values.limit, "--limit", 0) }, call);
      const rows = res.spans.map((slow) => {
        const span = slow.span!;
        return [span.spanId, `${span.serviceName}:${span.operationName}`, String(slow.durationMs), percent(slow.traceShare), String(slow.selfMs), slow.onCriticalPath ? "yes" : "no"];
      });
      cli.output.table(["span", "name", "duration ms", "share", "self ms", "critical"], rows, toJson(SlowSpanAnalysisResponseSchema, res));
      return 0;
    }
    case "anomalies": {
      const res = await collector.anomalousTraces({ limit: integerFlag(cli.values.limit, "--limit", 0) }, call);
      const rows = res.traces.map((t) => [
        t.traceId,
        String(t.totalDurationMs),
        String(t.spanCount),
        String(t.errorCount),
        t.rootServiceName === "" ? "(no root yet)" : `${t.rootServiceName}:${t.rootOperationName}`,
        t.firstSeen === undefined ? "" : timestampDate(t.firstSeen).toISOString(),
      ]);
      cli.output.table(["trace", "duration ms", "spans", "errors", "root", "first seen"], rows, toJson(AnomalousTracesResponseSchema, res));
      cli.output.line(`${plural(res.traces.length, "trace")} over the ${res.thresholdMs} ms threshold`, undefined);
      return 0;
    }
    case "watch-anomalies":
      return watchAnomalies(cli, collector);
    case "percentiles": {
      const service = cli.positionals[0];
      if (service === undefined) throw new UsageError("percentiles needs a SERVICE");
      const res = await collector.serviceLatencyPercentiles(
        { serviceName: service, percentiles: percentileList(cli.values.p), ...since(cli) },
        call,
      );
      const rows = res.percentiles.map((p) => [`p${p.percentile}`, String(p.latencyMs)]);
      cli.output.table(["percentile", "latency ms"], rows, toJson(ServiceLatencyPercentilesResponseSchema, res));
      cli.output.line(`${plural(res.sampleCount, "sample")} of ${service}`, undefined);
      return 0;
    }
    case "slo": {
      const res = await collector.sloComplianceReport({ sloByService: sloFlags(cli.values.slo), ...since(cli) }, call);
      const rows = res.services.map((s) => [
        s.serviceName,
        String(s.sloMs),
        s.p99Ms === undefined ? "-" : String(s.p99Ms),
        `${s.compliancePct.toFixed(1)}%`,
        String(s.violations),
        String(s.sampleCount),
      ]);
      cli.output.table(["service", "slo ms", "p99 ms", "compliance", "violations", "samples"], rows, toJson(SloComplianceReportResponseSchema, res));
      return 0;
    }
    case "deps": {
      const res = await collector.dependencyGraph({ ...since(cli) }, call);
      const rows = res.services.flatMap((node) =>
        node.downstream.length === 0
          ? [[node.serviceName, "-", "-"]]
          : node.downstream.map((edge) => [node.serviceName, edge.serviceName, String(edge.callCount)]),
      );
      cli.output.table(["service", "downstream", "calls"], rows, toJson(DependencyGraphResponseSchema, res));
      return 0;
    }
    case "incomplete": {
      const res = await collector.incompleteTraces({ limit: integerFlag(cli.values.limit, "--limit", 0) }, call);
      cli.output.table(["trace"], res.traceIds.map((id) => [id]), toJson(IncompleteTracesResponseSchema, res));
      return 0;
    }
    case "prune": {
      const res = await collector.pruneExpired({}, call);
      cli.output.line(`pruned ${plural(res.pruned, "trace")}`, toJson(PruneExpiredResponseSchema, res));
      return 0;
    }
    case "ingest":
      return ingest(cli, collector);
    default:
      throw new UsageError(`unknown trace subcommand "${sub}"`);
  }
}

function durationNs(duration: Duration | undefined): bigint {
  return duration === undefined ? 0n : duration.seconds * 1_000_000_000n + BigInt(duration.nanos);
}

/** `{ since }` of the request when --since is given. */
function since(cli: ClientInvocation): { since?: ReturnType<typeof sinceFlag> } {
  const value = sinceFlag(cli.values.since, "--since");
  return value === undefined ? {} : { since: value };
}

/** `--p 50,99.9` as numbers in (0, 100]; empty (the server's defaults) when absent. */
function percentileList(value: string | boolean | undefined): number[] {
  if (value === undefined) return [];
  return String(value)
    .split(",")
    .map((part) => {
      const p = Number(part.trim());
      if (part.trim() === "" || !Number.isFinite(p) || p <= 0 || p > 100) {
        throw new UsageError(`--p must be percentiles in (0, 100] separated by commas, got "${part}"`);
      }
      return p;
    });
}

/** `--slo checkout=20 --slo cart=10,search=50` as SLOs by service. */
function sloFlags(values: string | boolean | undefined): Record<string, number> {
  const slos: Record<string, number> = {};
  for (const value of (values as unknown as string[] | undefined) ?? []) {
    for (const pair of value.split(",")) {
      const match = /^([^=\s]+)=(\d+(?:\.\d+)?)$/.exec(pair.trim());
      if (match === null || Number(match[2]) <= 0) throw new UsageError(`--slo must be SERVICE=MS with MS > 0, got "${pair}"`);
      slos[match[1]!] = Number(match[2]);
    }
  }
  return slos;
}

/** A frame tree in d3-flame-graph's input format, values in nanoseconds (inclusive). */
interface D3Frame {
  name: string;
  value: number;
  children: D3Frame[];
}

function d3Frame(node: FlamegraphNode): D3Frame {
  return { name: node.name, value: Number(node.value), children: node.children.map(d3Frame) };
}

/**
 * `trace flamegraph`: folded stacks (default) or the d3-flame-graph JSON
 * tree, written to --out or stdout. With --json stdout gets the response
 * instead, and --out still receives the chosen format.
 */
async function flamegraph(cli: ClientInvocation, collector: Collector, traceId: string): Promise<number> {
  const format = (cli.values.format as string | undefined) ?? "folded";
  if (format !== "folded" && format !== "json") throw new UsageError(`--format must be folded or json, got "${format}"`);
  const out = cli.values.out as string | undefined;
  if (out === "") throw new UsageError("--out needs a PATH");
  const res = await collector.flamegraph({ traceId }, { timeoutMs: cli.timeoutMs });
  const content = format === "folded" ? res.folded : JSON.stringify(d3Frame(res.root!), null, 2) + "\n";
  const json = toJson(FlamegraphResponseSchema, res);
  if (out === undefined) {
    if (cli.values.json === true) cli.output.line("", json);
    else process.stdout.write(content);
    return 0;
  }
  writeFileSync(out, content);
  const what = format === "folded" ? `folded stacks (${plural(res.folded.split("\n").filter((l) => l !== "").length, "stack")})` : "flame graph JSON";
  cli.output.line(`wrote ${what} of trace ${traceId} to ${out}`, json);
  return 0;
}

function anomalyLine(revision: bigint, type: AnomalyEventType, anomaly: TraceAnomaly): string {
  const root = anomaly.rootServiceName === "" ? "(no root yet)" : `${anomaly.rootServiceName}:${anomaly.rootOperationName}`;
  return [
    String(revision),
    AnomalyEventType[type] ?? String(type),
    anomaly.traceId,
    `${anomaly.totalDurationMs} ms`,
    plural(anomaly.spanCount, "span"),
    plural(anomaly.errorCount, "error"),
    root,
    anomaly.reason,
  ].join("  ");
}

/** `trace watch-anomalies`: one line per anomaly event, resumed by revision after a dropped stream. */
function watchAnomalies(cli: ClientInvocation, collector: Collector): Promise<number> {
  const serviceName = (cli.values.service as string | undefined) ?? "";
  const minDurationMs = BigInt(integerFlag(cli.values["min-duration-ms"], "--min-duration-ms", 0, 0));
  const json = cli.values.json === true;
  return runRevisionWatch({
    name: "watch-anomalies",
    startRevision: BigInt(integerFlag(cli.values.from, "--from", 0, 0)),
    open: (revision, signal) => collector.watchAnomalies({ serviceName, minDurationMs, startRevision: revision }, { signal }),
    onMessage(res, revision) {
      const m = res.message;
      if (m.case === "started") {
        const text = m.value.reset
          ? `watching anomalies after revision ${m.value.revision} (reset: events after revision ${revision} were compacted; 'trace anomalies' lists the current ones)`
          : `watching anomalies after revision ${m.value.revision}`;
        cli.output.line(text, toJson(WatchAnomaliesResponseSchema, res));
        return m.value.revision;
      }
      if (m.case === "change") {
        if (json) cli.output.line("", toJson(WatchAnomaliesResponseSchema, res));
        else for (const event of m.value.events) cli.output.line(anomalyLine(m.value.revision, event.type, event.anomaly!), undefined);
        return m.value.revision;
      }
      if (m.case === "progress" && m.value.revision > revision) return m.value.revision;
      return revision;
    },
  });
}

/** A file or stdin's spans: a JSON array of Span, or an IngestBatchRequest's `{"spans": [...]}`. */
function readSpans(path: string): Span[] {
  const parsed = readJsonFile(path);
  const list = Array.isArray(parsed) ? parsed : (parsed as { spans?: unknown } | null)?.spans;
  if (!Array.isArray(list)) throw new InputError(`${path}: expected a JSON array of spans (or {"spans": [...]})`);
  return list.map((item: unknown, i) => {
    try {
      return fromJson(SpanSchema, item as JsonValue);
    } catch (error) {
      throw new InputError(`${path}: spans[${i}]: ${(error as Error).message}`);
    }
  });
}

/**
 * `trace ingest --file`: stores the file's spans with IngestBatch, in batches
 * of at most {@link batchSpans}, and reports the summed counts; dropped
 * spans are listed with their position in the file.
 */
async function ingest(cli: ClientInvocation, collector: Collector): Promise<number> {
  const path = requiredFlag(cli, "file");
  let spans: Span[];
  try {
    spans = readSpans(path);
  } catch (error) {
    return inputFailure("trace ingest", error);
  }
  const total = create(IngestBatchResponseSchema);
  for (let first = 0; first < spans.length; first += batchSpans) {
    let res;
    try {
      res = await collector.ingestBatch({ spans: spans.slice(first, first + batchSpans) }, { timeoutMs: cli.timeoutMs });
    } catch (error) {
      if (first > 0) process.stderr.write(`latticeforge trace ingest: spans ${first}.. rejected (indexes below are within that batch); spans before ${first} were stored\n`);
      throw error;
    }
    total.ingested += res.ingested;
    total.dropped += res.dropped;
    total.duplicates += res.duplicates;
    for (const dropped of res.droppedSpans) total.droppedSpans.push({ ...dropped, index: dropped.index + first });
  }
  cli.output.line(
    [
      `ingested ${plural(total.ingested, "span")} (${plural(total.duplicates, "duplicate")}, ${total.dropped} dropped)`,
      ...total.droppedSpans.map(droppedLine),
    ].join("\n"),
    toJson(IngestBatchResponseSchema, total),
  );
  return 0;
}

function droppedLine(dropped: DroppedSpan): string {
  return `  dropped spans[${dropped.index}] ${dropped.traceId}/${dropped.spanId}: ${DropReason[dropped.reason]}: ${dropped.message}`;
}
