import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpanSchema, SpanStatus, TraceCollectorService, type Span } from "../../../gen/latticeforge/tracing/v1/tracing_pb.js";
import { cliLines as lines, interruptCli as interrupt, lineMatching, runCli as run } from "../../fixtures/cli-run.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { spawnCli } from "../../fixtures/server-process.js";
import { within } from "../../fixtures/streams.js";
import { callOptions, newTraceId, spanId, spanMessage, traceSpans } from "../../fixtures/tracing.js";

/** The bar of [from, to) cells in a 60-cell timeline, borders included. */
function bar(from: number, to: number): string {
  return `|${" ".repeat(from)}${"█".repeat(to - from)}${" ".repeat(60 - to)}|`;
}

/** A checkout trace: 120 ms, one error; anomalous over the test's 100 ms threshold. */
function checkoutTrace(trace: string, prefix = ""): Span[] {
  return traceSpans(trace, [
    { id: `${prefix}root`, service: `${prefix}frontend`, op: "GET /checkout", start: 0, end: 120 },
    { id: `${prefix}cart`, parent: `${prefix}root`, service: `${prefix}cart`, op: "GetCart", start: 5, end: 40 },
    { id: `${prefix}order`, parent: `${prefix}root`, service: `${prefix}checkout`, op: "PlaceOrder", start: 45, end: 115 },
    { id: `${prefix}charge`, parent: `${prefix}order`, service: `${prefix}payments`, op: "Charge", start: 50, end: 110, status: SpanStatus.ERROR },
  ]);
}

describe("latticeforge trace (CLI)", () => {
  let server: TestControlPlane;
  let addr: string[];
  let dir: string;
  const trace = newTraceId();

  /** Writes spans as the JSON array `trace ingest --file` reads. */
  const spansFile = (name: string, spans: readonly Span[]): string => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(spans.map((span) => toJson(SpanSchema, span)), null, 2));
    return path;
  };

  beforeAll(async () => {
    server = await startTestControlPlane({ flags: { "anomaly-threshold": "100" } });
    addr = ["--addr", server.grpcAddress];
    dir = mkdtempSync(join(tmpdir(), "latticeforge-trace-cli-"));
  });
  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ingests a JSON file of spans, counts duplicates on a second run, and prints the counts as JSON", async () => {
    const file = spansFile("checkout.json", checkoutTrace(trace));
    const first = await run(["trace", "ingest", "--file", file, ...addr]);
    expect(first).toMatchObject({ code: 0, stdout: "ingested 4 spans (0 duplicates, 0 dropped)\n" });
    const again = await run(["trace", "ingest", "--file", file, ...addr, "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ duplicates: 4 });
  });

  it("draws the trace as a 60-column waterfall when stdout is not a terminal", async () => {
    const res = await run(["trace", "get", trace, ...addr]);
    expect(res.code).toBe(0);
    // 60 cells over 120 ms: 2 ms per cell, edges rounded to the nearest cell.
    expect(res.stdout.split("\n")).toEqual([
      `trace ${trace}  120.000 ms  4 spans  4 services  1 error`,
      `OFFSET MS  ${"TIMELINE".padEnd(62)}  DURATION MS  SPAN`,
      `    0.000  ${bar(0, 60)}      120.000  frontend:GET /checkout`,
      `    5.000  ${bar(3, 20)}       35.000    cart:GetCart`,
      `   45.000  ${bar(23, 58)}       70.000    checkout:PlaceOrder`,
      `   50.000  ${bar(25, 55)}       60.000      payments:Charge  ✗ error`,
      "",
    ]);
  });

  it("get: --ids adds span ids, --bar-width fixes the bar, --json prints the GetTrace response", async () => {
    const narrow = await run(["trace", "get", trace, ...addr, "--ids", "--bar-width", "12"]);
    expect(narrow.stdout).toContain(`    5.000  | ███        |       35.000    cart:GetCart [${spanId("cart")}]\n`);
    const json = await run(["trace", "get", trace, ...addr, "--json"]);
    const parsed = JSON.parse(json.stdout) as { trace: { traceId: string; totalDurationMs: string; spans: unknown[] } };
    expect(parsed.trace).toMatchObject({ traceId: trace, totalDurationMs: "120" });
    expect(parsed.trace.spans).toHaveLength(4);
  });

  it("prints the critical path, the per-service breakdown and the slow spans as tables", async () => {
    const path = await run(["trace", "critical-path", trace, ...addr]);
    expect(path.code).toBe(0);
    expect(path.stdout.split("\n")).toEqual([
      "SPAN              SERVICE   OPERATION      CRITICAL MS  DURATION MS",
      `${spanId("root")}  frontend  GET /checkout  15.000       120.000`,
      `${spanId("cart")}  cart      GetCart        35.000       35.000`,
      `${spanId("order")}  checkout  PlaceOrder     10.000       70.000`,
      `${spanId("charge")}  payments  Charge         60.000       60.000`,
      "total 120 ms on the critical path (4 spans)",
      "",
    ]);

    const breakdown = await run(["trace", "breakdown", trace, ...addr]);
    expect(breakdown.stdout.split("\n")).toEqual([
      "SERVICE   TOTAL MS  SELF MS  SPANS  ERRORS",
      "frontend  120       15       1      0.0%",
      "checkout  70        10       1      0.0%",
      "payments  60        60       1      100.0%",
      "cart      35        35       1      0.0%",
      "",
    ]);

    const slow = await run(["trace", "slow", trace, "--threshold-ms", "50", ...addr]);
    expect(slow.stdout.split("\n")).toEqual([
      "SPAN              NAME                    DURATION MS  SHARE   SELF MS  CRITICAL",
      `${spanId("root")}  frontend:GET /checkout  120          100.0%  15       yes`,
      `${spanId("order")}  checkout:PlaceOrder     70           58.3%   10       yes`,
      `${spanId("charge")}  payments:Charge         60           50.0%   60       yes`,
      "",
    ]);
  });

  it("writes folded stacks to stdout or a file, and a d3-flame-graph JSON tree with --format json", async () => {
    const folded = [
      "frontend:GET /checkout 15000000",
      "frontend:GET /checkout;cart:GetCart 35000000",
      "frontend:GET /checkout;checkout:PlaceOrder 10000000",
      "frontend:GET /checkout;checkout:PlaceOrder;payments:Charge 60000000",
      "",
    ].join("\n");
    const stdout = await run(["trace", "flamegraph", trace, ...addr]);
    expect(stdout).toMatchObject({ code: 0, stdout: folded });

    const foldedPath = join(dir, "trace.folded");
    const toFile = await run(["trace", "flamegraph", trace, "--out", foldedPath, ...addr]);
    expect(toFile.stdout).toBe(`wrote folded stacks (4 stacks) of trace ${trace} to ${foldedPath}\n`);
    expect(readFileSync(foldedPath, "utf8")).toBe(folded);

    const jsonPath = join(dir, "trace.json");
    const json = await run(["trace", "flamegraph", trace, "--format", "json", "--out", jsonPath, ...addr]);
    expect(json.code).toBe(0);
    expect(JSON.parse(readFileSync(jsonPath, "utf8"))).toEqual({
      name: "frontend:GET /checkout",
      value: 120_000_000,
      children: [
        { name: "cart:GetCart", value: 35_000_000, children: [] },
        {
          name: "checkout:PlaceOrder",
          value: 70_000_000,
          children: [{ name: "payments:Charge", value: 60_000_000, children: [] }],
        },
      ],
    });

    const response = await run(["trace", "flamegraph", trace, ...addr, "--json"]);
    expect(JSON.parse(response.stdout)).toMatchObject({ root: { name: "frontend:GET /checkout", value: "120000000" }, folded });
  });

  it("lists anomalies, percentiles, SLO compliance and dependencies", async () => {
    const anomalies = await run(["trace", "anomalies", ...addr]);
    expect(anomalies.code).toBe(0);
    expect(anomalies.stdout).toMatch(new RegExp(`^${trace}\\s+120\\s+4\\s+1\\s+frontend:GET /checkout\\s+\\d{4}-`, "m"));
    expect(anomalies.stdout).toMatch(/^\d+ traces? over the 100 ms threshold$/m);

    const percentiles = await run(["trace", "percentiles", "cart", "--p", "50,99.9", ...addr]);
    expect(percentiles.stdout.split("\n")).toEqual(["PERCENTILE  LATENCY MS", "p50         35", "p99.9       35", "1 sample of cart", ""]);

    const slo = await run(["trace", "slo", "--slo", "payments=50", "--slo", "cart=40,frontend=100", ...addr]);
    expect(slo.stdout.split("\n")).toEqual([
      "SERVICE   SLO MS  P99 MS  COMPLIANCE  VIOLATIONS  SAMPLES",
      "cart      40      35      100.0%      0           1",
      "frontend  100     120     0.0%        1           1",
      "payments  50      60      0.0%        1           1",
      "",
    ]);
    const sloSince = await run(["trace", "slo", "--slo", "cart=40", "--since", "2099-01-01T00:00:00Z", ...addr]);
    expect(sloSince.stdout).toMatch(/^cart\s+40\s+-\s+100\.0%\s+0\s+0$/m);

    const deps = await run(["trace", "deps", ...addr]);
    expect(deps.stdout.split("\n")).toEqual([
      "SERVICE   DOWNSTREAM  CALLS",
      "cart      -           -",
      "checkout  payments    1",
      "frontend  cart        1",
      "frontend  checkout    1",
      "payments  -           -",
      "",
    ]);
    const depsJson = await run(["trace", "deps", ...addr, "--json"]);
    expect(JSON.parse(depsJson.stdout)).toMatchObject({ services: expect.arrayContaining([{ serviceName: "checkout", downstream: [{ serviceName: "payments", callCount: "1" }] }]) });
  });

  it("lists a trace without a root as incomplete (GetTrace answers FAILED_PRECONDITION) and prunes nothing unexpired", async () => {
    const rootless = newTraceId();
    const file = spansFile("rootless.json", traceSpans(rootless, [{ id: "child", parent: "missing", service: "late", start: 0, end: 5 }]));
    expect((await run(["trace", "ingest", "--file", file, ...addr])).code).toBe(0);

    const incomplete = await run(["trace", "incomplete", ...addr]);
    expect(incomplete.stdout.split("\n")).toContain(rootless);
    const get = await run(["trace", "get", rootless, ...addr]);
    expect(get.code).toBe(1);
    expect(get.stderr).toMatch(/^latticeforge trace: FailedPrecondition: /);

    const prune = await run(["trace", "prune", ...addr]);
    expect(prune).toMatchObject({ code: 0, stdout: "pruned 0 traces\n" });
    expect(JSON.parse((await run(["trace", "prune", ...addr, "--json"])).stdout)).toEqual({});
  });

  it.each([
    [["trace"], "Usage: latticeforge trace"],
    [["trace", "get"], "get needs a TRACE_ID"],
    [["trace", "frobnicate"], 'unknown trace subcommand "frobnicate"'],
    [["trace", "flamegraph", "ab", "--format", "svg"], "--format must be folded or json"],
    [["trace", "slow", "ab"], "--threshold-ms is required"],
    [["trace", "slow", "ab", "--threshold-ms=-1"], "--threshold-ms must be a number >= 0"],
    [["trace", "percentiles", "cart", "--p", "0"], "--p must be percentiles in (0, 100]"],
    [["trace", "slo", "--slo", "cart"], "--slo must be SERVICE=MS"],
    [["trace", "deps", "--since", "yesterday"], "--since must be an age"],
    [["trace", "ingest"], "--file is required"],
    [["trace", "watch-anomalies", "--min-duration-ms=-5"], "--min-duration-ms must be at least 0"],
  ])("%j is a usage error (exit 2): %s", async (args, message) => {
    const res = await run(args.length === 1 ? args : [...args, ...addr]);
    expect(res.code).toBe(2);
    expect(res.stderr + res.stdout).toContain(message);
  });

  it("reports a missing trace and server-side validation with the status code, exit 1", async () => {
    const missing = await run(["trace", "breakdown", newTraceId(), ...addr]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("NotFound: trace ");

    const invalid = spansFile("invalid.json", [spanMessage({ trace: newTraceId(), id: "x", start: 0, end: 1 }, { serviceName: "" })]);
    const rejected = await run(["trace", "ingest", "--file", invalid, ...addr]);
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toContain("InvalidArgument: spans[0] is missing required fields: service_name");
  });

  it("reports an unreadable or malformed span file, exit 1", async () => {
    const notJson = join(dir, "broken.json");
    writeFileSync(notJson, "[{");
    const broken = await run(["trace", "ingest", "--file", notJson, ...addr]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain(`${notJson}: not JSON`);

    const badField = join(dir, "bad-field.json");
    writeFileSync(badField, JSON.stringify([{ spanId: "00f067aa0ba902b7", startTime: "yesterday" }]));
    const decoded = await run(["trace", "ingest", "--file", badField, ...addr]);
    expect(decoded.code).toBe(1);
    expect(decoded.stderr).toContain(`${badField}: spans[0]: `);

    const missing = await run(["trace", "ingest", "--file", join(dir, "nope.json"), ...addr]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("cannot read");
  });

  it("watch-anomalies prints matching anomalies live, filtered by service and duration, and stops on Ctrl-C", async () => {
    const watch = spawnCli(["trace", "watch-anomalies", "--service", "w-frontend", "--min-duration-ms", "110", ...addr]);
    try {
      const started = await lineMatching(watch, /^watching anomalies after revision \d+$/);
      const startRevision = Number(started.split(" ").pop());

      const collector = server.grpc(TraceCollectorService);
      const other = newTraceId();
      await collector.ingestBatch({ spans: checkoutTrace(other, "x-") }, callOptions); // another root service
      const short = newTraceId();
      await collector.ingestBatch(
        { spans: traceSpans(short, [{ id: "s", service: "w-frontend", op: "GET /", start: 0, end: 105 }]) },
        callOptions,
      ); // over the threshold, under --min-duration-ms
      const watched = newTraceId();
      await collector.ingestBatch({ spans: checkoutTrace(watched, "w-") }, callOptions);

      const event = await lineMatching(watch, new RegExp(watched));
      expect(event).toMatch(
        new RegExp(`^(\\d+)  DETECTED  ${watched}  120 ms  4 spans  1 error  w-frontend:GET /checkout  total duration 120 ms is over the 100 ms threshold$`),
      );
      expect(Number(event.split(" ")[0])).toBeGreaterThan(startRevision);
      expect(lines(watch).join("\n")).not.toMatch(new RegExp(`${other}|${short}`));
      expect(await interrupt(watch)).toBe(0);
    } finally {
      watch.child.kill();
    }
  });

  it("watch-anomalies --json prints each message as protobuf JSON", async () => {
    const watch = spawnCli(["trace", "watch-anomalies", "--service", "j-frontend", "--json", ...addr]);
    try {
      let stdout = "";
      watch.child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      await lineMatching(watch, /^\}$/); // the end of the pretty-printed "started" message
      const traced = newTraceId();
      await server.grpc(TraceCollectorService).ingestBatch({ spans: checkoutTrace(traced, "j-") }, callOptions);
      await within(
        (async () => {
          while (!stdout.includes(traced)) await new Promise((resolve) => setTimeout(resolve, 20));
        })(),
        10_000,
        "the change message",
      );
      expect(await interrupt(watch)).toBe(0);
      const documents = stdout.split(/\n(?=\{)/).map((text) => JSON.parse(text) as Record<string, unknown>);
      expect(documents[0]).toMatchObject({ started: { revision: expect.stringMatching(/^\d+$/) } });
      expect(documents[1]).toMatchObject({
        change: { events: [{ type: "ANOMALY_EVENT_TYPE_DETECTED", anomaly: { traceId: traced, totalDurationMs: "120" } }] },
      });
    } finally {
      watch.child.kill();
    }
  });
});

describe("latticeforge trace watch-anomalies across a server restart", () => {
  it("resumes from the last revision it printed and delivers the anomaly that happened while it was disconnected", async () => {
    const flags = { "anomaly-threshold": "100" };
    const dir = mkdtempSync(join(tmpdir(), "latticeforge-trace-watch-"));
    let server = await startTestControlPlane({ dir, flags });
    const port = server.grpcAddress.split(":")[1]!;
    const watch = spawnCli(["trace", "watch-anomalies", "--addr", server.grpcAddress]);
    try {
      await lineMatching(watch, /^watching anomalies after revision \d+$/);
      const before = newTraceId();
      await server.grpc(TraceCollectorService).ingestBatch({ spans: checkoutTrace(before) }, callOptions);
      const seen = await lineMatching(watch, new RegExp(before));
      await server.stop();

      // While the watch cannot connect: the same database served on another
      // port records a new anomaly. Only a resume by revision can deliver it.
      const elsewhere = await startTestControlPlane({ dir, flags });
      const during = newTraceId();
      await elsewhere.grpc(TraceCollectorService).ingestBatch({ spans: checkoutTrace(during) }, callOptions);
      await elsewhere.stop();

      server = await startTestControlPlane({ dir, flags: { ...flags, listen: `127.0.0.1:${port}` } });
      const resumed = await lineMatching(watch, new RegExp(during), 15_000);
      expect(Number(resumed.split(" ")[0])).toBe(Number(seen.split(" ")[0]) + 1);
      expect(watch.stderr()).toMatch(new RegExp(`^watch-anomalies: .*; resuming from revision ${seen.split(" ")[0]} in \\d+ ms$`, "m"));
      expect(lines(watch).filter((line) => line.includes(before))).toHaveLength(1);
      expect(await interrupt(watch)).toBe(0);
    } finally {
      watch.child.kill();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
