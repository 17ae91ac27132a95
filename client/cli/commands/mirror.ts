import { fromJson, toJson, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import {
  AddMirrorResponseSchema,
  AnalyzeDiffsResponseSchema,
  CompareResponsesResponseSchema,
  DiffKind,
  DisableMirrorResponseSchema,
  DispatchError,
  DispatchResponseSchema,
  DrainResponseSchema,
  EnableMirrorResponseSchema,
  FieldVerdict,
  ListMirrorsResponseSchema,
  MirrorConfigSchema,
  MirrorEventType,
  MirrorMode,
  MirrorService,
  RemoveMirrorResponseSchema,
  StatsResponseSchema,
  WatchMirrorsResponseSchema,
  type AnalyzeDiffsResponse,
  type MirrorConfig,
  type MirroredRequest,
  type MirrorResult,
} from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { clientFlagsHelp, UsageError, type ClientInvocation } from "../client-flags.js";
import type { Command } from "../command.js";
import { integerFlag, listFlag, numberFlag, repeatedFlag, requiredFlag } from "../flag-values.js";
import { inputFailure, readJsonFile } from "../input-file.js";
import { alignTable } from "../output.js";
import { runRevisionWatch } from "../revision-watch.js";
import { createServiceCommand } from "../service-command.js";
import { percent, plural } from "../text-format.js";

const usage = `Usage: latticeforge mirror <subcommand> [flags]

Subcommands:
  add MIRROR_ID --source SVC --shadow URL --mode full|sampled|filtered|replay
      [--sample-rate R] [--include I,...] [--exclude I,...] [--timeout-ms N] [--buffer-size N]
      [--ignore-field PATH]... [--redact-header NAME]... [--secondary URL] [--disabled]
                                          create a mirror (--timeout-ms defaults to 1000, --buffer-size to
                                          the server's 1000; --secondary runs production's code: noise baseline)
  remove|enable|disable MIRROR_ID         delete a mirror with its buffer and results; turn capture on or off
  list                                    every mirror as a table
  stats                                   per mirror: captured, dropped, pending, dispatched, failed, diffs
  drain MIRROR_ID [--limit N]             take buffered requests out (oldest first) and print them
  dispatch MIRROR_ID [--batch-size N] [--rate-multiplier X]
                                          send buffered requests to the shadow now and print the results
                                          (REPLAY mirrors: X paces sends at the captured spacing / X)
  diff MIRROR_ID [--threshold T] [--noise-relative R] [--noise-absolute A]
                                          the mirror's diff report: rate vs threshold, fields and verdicts,
                                          recommendations; exit code 1 when it alerts
  diff --production FILE --shadow FILE [--ignore-field PATH]...
                                          compare two JSON responses field by field (FILE - is stdin);
                                          exit code 1 when they differ
  watch [--from REVISION]                 print the mirrors, then every change live; resumes by revision
                                          after a dropped connection

With --json every subcommand prints the RPC's response as protobuf JSON (int64 fields as strings).

${clientFlagsHelp}`;

const flags = {
  source: { type: "string" },
  shadow: { type: "string" },
  mode: { type: "string" },
  "sample-rate": { type: "string" },
  include: { type: "string", multiple: true },
  exclude: { type: "string", multiple: true },
  "timeout-ms": { type: "string" },
  "buffer-size": { type: "string" },
  "ignore-field": { type: "string", multiple: true },
  "redact-header": { type: "string", multiple: true },
  secondary: { type: "string" },
  disabled: { type: "boolean" },
  limit: { type: "string" },
  "batch-size": { type: "string" },
  "rate-multiplier": { type: "string" },
  threshold: { type: "string" },
  "noise-relative": { type: "string" },
  "noise-absolute": { type: "string" },
  production: { type: "string" },
  from: { type: "string" },
} as const;

const modes: Record<string, MirrorMode> = {
  full: MirrorMode.FULL,
  sampled: MirrorMode.SAMPLED,
  filtered: MirrorMode.FILTERED,
  replay: MirrorMode.REPLAY,
};

/** The shadow timeout of `mirror add` without --timeout-ms (the API has no default: 0 is invalid). */
const defaultTimeoutMs = 1000;

/** `latticeforge mirror …`: the MirrorService from the command line. */
export const mirrorCommand: Command = createServiceCommand({
  summary: "add, inspect, dispatch, diff and watch shadow-traffic mirrors",
  usage,
  flags,
  service: MirrorService,
  run: runSubcommand,
});

type Mirrors = Client<typeof MirrorService>;

async function runSubcommand(sub: string, cli: ClientInvocation, mirrors: Mirrors): Promise<number> {
  const call = { timeoutMs: cli.timeoutMs };
  const mirrorId = (): string => {
    const id = cli.positionals[0];
    if (id === undefined) throw new UsageError(`${sub} needs a MIRROR_ID`);
    return id;
  };
  switch (sub) {
    case "add": {
      const res = await mirrors.addMirror({ mirror: mirrorFromFlags(cli, mirrorId()) }, call);
      cli.output.line(`added mirror ${res.mirror!.mirrorId} at revision ${res.revision}`, toJson(AddMirrorResponseSchema, res));
      return 0;
    }
    case "remove": {
      const id = mirrorId();
      const res = await mirrors.removeMirror({ mirrorId: id }, call);
      cli.output.line(`removed mirror ${id} at revision ${res.revision}`, toJson(RemoveMirrorResponseSchema, res));
      return 0;
    }
    case "enable": {
      const res = await mirrors.enableMirror({ mirrorId: mirrorId() }, call);
      cli.output.line(`enabled mirror ${res.mirror!.mirrorId} at revision ${res.revision}`, toJson(EnableMirrorResponseSchema, res));
      return 0;
    }
    case "disable": {
      const res = await mirrors.disableMirror({ mirrorId: mirrorId() }, call);
      cli.output.line(`disabled mirror ${res.mirror!.mirrorId} at revision ${res.revision}`, toJson(DisableMirrorResponseSchema, res));
      return 0;
    }
    case "list": {
      const res = await mirrors.listMirrors({}, call);
      cli.output.table(mirrorColumns, res.mirrors.map(mirrorRow), toJson(ListMirrorsResponseSchema, res));
      return 0;
    }
    case "stats": {
      const res = await mirrors.stats({}, call);
      const rows = res.mirrors.map((s) =>
        [s.mirrorId, s.captured, s.dropped, s.pending, s.dispatched, s.failed, s.diffs].map(String),
      );
      cli.output.table(["mirror", "captured", "dropped", "pending", "dispatched", "failed", "diffs"], rows, toJson(StatsResponseSchema, res));
      return 0;
    }
    case "drain": {
      const id = mirrorId();
      const res = await mirrors.drain({ mirrorId: id, limit: integerFlag(cli.values.limit, "--limit", 0, 1) }, call);
      cli.output.line(
        [...res.requests.flatMap(requestLines), `drained ${plural(res.requests.length, "request")} from ${id}`].join("\n"),
        toJson(DrainResponseSchema, res),
      );
      return 0;
    }
    case "dispatch":
      return dispatch(cli, mirrors, mirrorId());
    case "diff":
      return cli.values.production === undefined ? analyze(cli, mirrors) : compare(cli, mirrors);
    case "watch":
      return watch(cli, mirrors);
    default:
      throw new UsageError(`unknown mirror subcommand "${sub}"`);
  }
}

/** The AddMirror config that `mirror add`'s flags describe. */
function mirrorFromFlags(cli: ClientInvocation, mirrorId: string): MessageInitShape<typeof MirrorConfigSchema> {
  const modeName = requiredFlag(cli, "mode");
  const mode = modes[modeName];
  if (mode === undefined) throw new UsageError(`--mode must be one of ${Object.keys(modes).join(", ")}, got "${modeName}"`);
  return {
    mirrorId,
    sourceService: requiredFlag(cli, "source"),
    shadowEndpoint: requiredFlag(cli, "shadow"),
    mode,
    sampleRate: numberFlag(cli.values["sample-rate"], "--sample-rate", 0),
    includeIntents: listFlag(cli.values.include, "--include"),
    excludeIntents: listFlag(cli.values.exclude, "--exclude"),
    timeoutMs: integerFlag(cli.values["timeout-ms"], "--timeout-ms", defaultTimeoutMs, 1),
    bufferSize: integerFlag(cli.values["buffer-size"], "--buffer-size", 0, 1),
    ignoreFields: repeatedFlag(cli.values["ignore-field"]),
    redactHeaders: repeatedFlag(cli.values["redact-header"]),
    secondaryEndpoint: (cli.values.secondary as string | undefined) ?? "",
    ...(cli.values.disabled === true ? { enabled: false } : {}),
  };
}

const mirrorColumns = ["mirror", "source", "mode", "selects", "shadow", "secondary", "timeout ms", "buffer", "status"];

function mirrorRow(m: MirrorConfig): string[] {
  return [
    m.mirrorId,
    m.sourceService,
    modeName(m.mode),
    selection(m),
    m.shadowEndpoint,
    m.secondaryEndpoint === "" ? "-" : m.secondaryEndpoint,
    String(m.timeoutMs),
    String(m.bufferSize),
    m.enabled === false ? "disabled" : "enabled",
  ];
}

function modeName(mode: MirrorMode): string {
  return (MirrorMode[mode] ?? String(mode)).toLowerCase();
}

/** What a mirror keeps: its sample rate, its intent filters, or everything. */
function selection(m: MirrorConfig): string {
  switch (m.mode) {
    case MirrorMode.SAMPLED:
      return percent(m.sampleRate, 2);
    case MirrorMode.FILTERED:
      return [
        ...(m.includeIntents.length > 0 ? [`+${m.includeIntents.join(",")}`] : []),
        ...(m.excludeIntents.length > 0 ? [`-${m.excludeIntents.join(",")}`] : []),
      ].join(" ");
    default:
      return "all";
  }
}

/** Compact JSON of a `google.protobuf.Value`. */
function valueText(value: Value | undefined): string {
  return value === undefined ? "(absent)" : JSON.stringify(toJson(ValueSchema, value));
}

/** A drained request: its request line, then headers, body and production response, indented. */
function requestLines(r: MirroredRequest): string[] {
  const at = r.mirroredAt === undefined ? "" : `  mirrored ${timestampDate(r.mirroredAt).toISOString()}`;
  const trace = r.traceId === "" ? "" : `  trace ${r.traceId}`;
  const intent = r.intent === "" ? "" : `  intent ${r.intent}`;
  const headers = Object.entries(r.headers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [
    `${r.requestId}  ${r.method} ${r.path}  ${r.sourceService}${intent}${trace}${at}`,
    ...headers.map(([name, value]) => `  ${name}: ${value}`),
    r.body.length > 0 ? `  body: ${plural(r.body.length, "byte")}` : `  payload: ${JSON.stringify(r.payload ?? {})}`,
    ...(r.productionResponse !== undefined ? [`  production response: ${valueText(r.productionResponse)}`] : []),
  ];
}

/** A result's outcome: `ok 200`, `http_status: shadow answered HTTP 503`, `timeout: …`, `connection: ECONNREFUSED`. */
function outcome(r: MirrorResult): string {
  if (r.success) return `ok ${r.responseCode ?? ""}`.trim();
  const kind = (DispatchError[r.error] ?? String(r.error)).toLowerCase();
  return r.errorMessage === "" ? kind : `${kind}: ${r.errorMessage}`;
}

/** What the diff found: the summary, `no diff`, or why nothing was compared; noise fields appended. */
function diffCell(r: MirrorResult): string {
  const diff = !r.compared ? (r.success ? "not compared (no production response)" : "-") : r.diffDetected ? (r.diffSummary ?? "differs") : "no diff";
  return r.noiseFields.length > 0 ? `${diff} [noise: ${r.noiseFields.join(", ")}]` : diff;
}

/** `mirror dispatch`: sends now, prints one row per result and the totals. */
async function dispatch(cli: ClientInvocation, mirrors: Mirrors, mirrorId: string): Promise<number> {
  const res = await mirrors.dispatch(
    {
      mirrorId,
      batchSize: integerFlag(cli.values["batch-size"], "--batch-size", 0, 1),
      rateMultiplier: numberFlag(cli.values["rate-multiplier"], "--rate-multiplier", 0),
    },
    { timeoutMs: cli.timeoutMs },
  );
  const rows = res.results.map((r) => [r.requestId, outcome(r), String(r.latencyMs), diffCell(r)]);
  cli.output.table(["request", "outcome", "latency ms", "diff"], rows, toJson(DispatchResponseSchema, res));
  const failed = res.results.filter((r) => !r.success).length;
  const diffs = res.results.filter((r) => r.diffDetected).length;
  const shadow = res.results[0]?.shadowEndpoint;
  cli.output.line(
    `dispatched ${plural(res.results.length, "request")}${shadow === undefined ? "" : ` to ${shadow}`}: ` +
      `${res.results.length - failed} ok, ${failed} failed, ${diffs} with diffs`,
    undefined,
  );
  return 0;
}

function optionalFraction(cli: ClientInvocation, flag: string): number | undefined {
  const value = cli.values[flag];
  return value === undefined ? undefined : numberFlag(value, `--${flag}`, 0);
}

/** `mirror diff MIRROR_ID`: the AnalyzeDiffs report; exit code 1 when it alerts. */
async function analyze(cli: ClientInvocation, mirrors: Mirrors): Promise<number> {
  const mirrorId = cli.positionals[0];
  if (mirrorId === undefined) throw new UsageError("diff needs a MIRROR_ID, or --production FILE --shadow FILE");
  const threshold = optionalFraction(cli, "threshold");
  const noiseRelative = optionalFraction(cli, "noise-relative");
  const noiseAbsolute = optionalFraction(cli, "noise-absolute");
  const res = await mirrors.analyzeDiffs(
    {
      mirrorId,
      ...(threshold !== undefined ? { threshold } : {}),
      ...(noiseRelative !== undefined ? { noiseRelative } : {}),
      ...(noiseAbsolute !== undefined ? { noiseAbsolute } : {}),
    },
    { timeoutMs: cli.timeoutMs },
  );
  cli.output.line(analysisText(mirrorId, res).join("\n"), toJson(AnalyzeDiffsResponseSchema, res));
  return res.alert ? 1 : 0;
}

/** Failure kinds in the order the server's recommendations name them; unknown kinds last. */
const failureKinds = ["timeout", "connection", "http_status"];

function failureOrder(kind: string): number {
  const index = failureKinds.indexOf(kind);
  return index < 0 ? failureKinds.length : index;
}

function analysisText(mirrorId: string, res: AnalyzeDiffsResponse): string[] {
  const failures = Object.entries(res.failures)
    .sort(([a], [b]) => failureOrder(a) - failureOrder(b))
    .map(([kind, count]) => `${kind} ${count}`)
    .join(", ");
  const verdict = res.alert ? "ALERT" : res.diffRate > res.threshold ? "over, but all noise" : "ok";
  const lines = [
    `mirror ${mirrorId}: ${plural(res.results, "result")}, ${res.compared} compared, ${res.failed} failed${failures === "" ? "" : ` (${failures})`}`,
    `diff rate ${percent(res.diffRate, 2)} (${res.diffRequests} of ${res.compared}) vs threshold ${percent(res.threshold, 2)}: ${verdict}`,
    `noise baseline: ${res.noiseMeasured ? "measured (secondary endpoint)" : "none"}`,
  ];
  if (res.fields.length > 0) {
    lines.push("");
    const columns = ["field", "diffs", "noise", "rate", "verdict", "examples"];
    const rows = res.fields.map((f) => [
      f.field,
      String(f.candidateDiffs),
      String(f.noiseDiffs),
      percent(f.diffRate),
      (FieldVerdict[f.verdict] ?? String(f.verdict)).toLowerCase(),
      f.exampleRequestIds.join(", "),
    ]);
    lines.push(...alignTable(columns, rows));
  }
  if (res.recommendations.length > 0) lines.push("", "recommendations:", ...res.recommendations.map((r) => `  - ${r}`));
  return lines;
}

/** `mirror diff --production FILE --shadow FILE`: CompareResponses; exit code 1 when they differ. */
async function compare(cli: ClientInvocation, mirrors: Mirrors): Promise<number> {
  if (cli.positionals.length > 0) throw new UsageError("diff takes a MIRROR_ID or --production and --shadow files, not both");
  const productionPath = requiredFlag(cli, "production");
  const shadowPath = requiredFlag(cli, "shadow");
  if (productionPath === "-" && shadowPath === "-") throw new UsageError("--production and --shadow cannot both be - (stdin)");
  let production: Value;
  let shadow: Value;
  try {
    production = fromJson(ValueSchema, readJsonFile(productionPath) as JsonValue);
    shadow = fromJson(ValueSchema, readJsonFile(shadowPath) as JsonValue);
  } catch (error) {
    return inputFailure("mirror diff", error);
  }
  const res = await mirrors.compareResponses(
    { production, shadow, ignoreFields: repeatedFlag(cli.values["ignore-field"]) },
    { timeoutMs: cli.timeoutMs },
  );
  const rows = res.diffs.map((d) => [
    d.path === "" ? "(top level)" : d.path,
    (DiffKind[d.kind] ?? String(d.kind)).toLowerCase(),
    valueText(d.production),
    valueText(d.shadow),
  ]);
  const lines = [...(rows.length > 0 ? alignTable(["path", "kind", "production", "shadow"], rows) : []), res.hasDiff ? plural(res.diffs.length, "differing field") : "no differences"];
  cli.output.line(lines.join("\n"), toJson(CompareResponsesResponseSchema, res));
  return res.hasDiff ? 1 : 0;
}

/** `mirror watch`: the mirrors, then each change, resumed by revision after a dropped stream. */
function watch(cli: ClientInvocation, mirrors: Mirrors): Promise<number> {
  const json = cli.values.json === true;
  const print = (text: string): void => cli.output.line(text, undefined);
  return runRevisionWatch({
    name: "watch",
    startRevision: BigInt(integerFlag(cli.values.from, "--from", 0, 0)),
    open: (revision, signal) => mirrors.watchMirrors({ startRevision: revision }, { signal }),
    onMessage(res, revision) {
      const m = res.message;
      if (json && m.case !== "progress" && m.case !== undefined) cli.output.line("", toJson(WatchMirrorsResponseSchema, res));
      if (m.case === "snapshot") {
        print(`snapshot at revision ${m.value.revision}${m.value.reset ? " (reset)" : ""}: ${plural(m.value.mirrors.length, "mirror")}`);
        for (const mirror of m.value.mirrors) print(`  ${mirrorRow(mirror).join("  ")}`);
        return m.value.revision;
      }
      if (m.case === "change") {
        for (const event of m.value.events) {
          print(`${m.value.revision}  ${MirrorEventType[event.type] ?? String(event.type)}  ${mirrorRow(event.mirror!).join("  ")}`);
        }
        return m.value.revision;
      }
      if (m.case === "progress" && m.value.revision > revision) return m.value.revision;
      return revision;
    },
  });
}
