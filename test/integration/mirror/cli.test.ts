import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MirrorMode, MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { cliLines, interruptCli, lineMatching, runCli } from "../../fixtures/cli-run.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { spawnCli } from "../../fixtures/server-process.js";
import { within } from "../../fixtures/streams.js";

const callOptions = { timeoutMs: 5000 };

/** A request a test shadow received. */
interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  /** performance.now() on arrival. */
  readonly at: number;
}

/** A real HTTP shadow on 127.0.0.1:0 that records what it receives. */
interface TestShadow {
  readonly url: string;
  readonly received: Received[];
  close(): Promise<void>;
}

/**
 * Starts an order service on 127.0.0.1:0. `/orders` answers
 * `{orderId, total, generatedAt}` with `generatedAt` the current time (a
 * non-deterministic field: noise); the candidate's `total` is off by one for
 * qty > 2 (the regression to find). `/slow` answers after 2 s (past the
 * mirrors' timeouts), `/fail` with 503.
 */
async function startShadow(code: "candidate" | "production"): Promise<TestShadow> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, at: performance.now() });
      if (req.url === "/fail") {
        res.writeHead(503).end();
        return;
      }
      if (req.url === "/slow") {
        setTimeout(() => res.end("{}"), 2000).unref();
        return;
      }
      const order = (body === "" ? {} : JSON.parse(body)) as { orderId?: string; qty?: number };
      const qty = order.qty ?? 1;
      const total = code === "candidate" && qty > 2 ? qty * 10 - 1 : qty * 10;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ orderId: order.orderId, total, generatedAt: new Date().toISOString() }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("latticeforge mirror (CLI)", () => {
  let server: TestControlPlane;
  let shadow: TestShadow;
  let secondary: TestShadow;
  let addr: string[];
  let dir: string;

  const mirrorClient = () => server.grpc(MirrorService);

  /** Captures an order request with production's response (unless `production` is false). */
  const captureOrder = (requestId: string, options: { qty?: number; path?: string; production?: boolean; intent?: string } = {}) =>
    mirrorClient().capture(
      {
        requestId,
        traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
        sourceService: "orders",
        intent: options.intent ?? "create_order",
        method: "POST",
        path: options.path ?? "/orders",
        headers: {
          host: "orders.internal:8443",
          authorization: "Bearer s3cr3t",
          "x-session": "abc",
          traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
        payload: { orderId: requestId, qty: options.qty ?? 1 },
        ...(options.production === false
          ? {}
          : {
              productionResponse: fromJson(ValueSchema, {
                orderId: requestId,
                total: (options.qty ?? 1) * 10,
                generatedAt: "2026-01-01T00:00:00.000Z",
              }),
            }),
      },
      callOptions,
    );

  const jsonFile = (name: string, value: unknown): string => {
    const path = join(dir, name);
    writeFileSync(path, typeof value === "string" ? value : JSON.stringify(value));
    return path;
  };

  beforeAll(async () => {
    server = await startTestControlPlane({ flags: { "max-mirrors": "100" } });
    [shadow, secondary] = await Promise.all([startShadow("candidate"), startShadow("production")]);
    addr = ["--addr", server.grpcAddress];
    dir = mkdtempSync(join(tmpdir(), "latticeforge-mirror-cli-"));
  });
  afterAll(async () => {
    await server.stop();
    await Promise.all([shadow.close(), secondary.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("adds mirrors of every mode and lists them as a table and as protobuf JSON", async () => {
    const full = await runCli([
      "mirror", "add", "l-full", ...addr, "--source", "orders", "--shadow", shadow.url, "--mode", "full",
      "--secondary", secondary.url, "--timeout-ms", "250", "--buffer-size", "20", "--ignore-field", "trace.id",
      "--redact-header", "x-session",
    ]);
    expect(full.code).toBe(0);
    expect(full.stdout).toMatch(/^added mirror l-full at revision \d+\n$/);
    const sampled = await runCli([
      "mirror", "add", "l-sampled", ...addr, "--source", "orders", "--shadow", shadow.url, "--mode", "sampled",
      "--sample-rate", "0.25", "--disabled",
    ]);
    expect(sampled.code).toBe(0);
    const filtered = await runCli([
      "mirror", "add", "l-filtered", ...addr, "--source", "orders", "--shadow", shadow.url, "--mode", "filtered",
      "--include", "refund,chargeback", "--include", "void", "--exclude", "refund_test",
    ]);
    expect(filtered.code).toBe(0);

    const list = await runCli(["mirror", "list", ...addr]);
    expect(list.code).toBe(0);
    const rows = list.stdout.split("\n");
    expect(rows[0]).toMatch(/^MIRROR\s+SOURCE\s+MODE\s+SELECTS\s+SHADOW\s+SECONDARY\s+TIMEOUT MS\s+BUFFER\s+STATUS$/);
    const escaped = (url: string) => url.replace(/\./g, "\\.");
    expect(list.stdout).toMatch(new RegExp(`^l-full\\s+orders\\s+full\\s+all\\s+${escaped(shadow.url)}\\s+${escaped(secondary.url)}\\s+250\\s+20\\s+enabled$`, "m"));
    expect(list.stdout).toMatch(new RegExp(`^l-sampled\\s+orders\\s+sampled\\s+25\\.00%\\s+${escaped(shadow.url)}\\s+-\\s+1000\\s+1000\\s+disabled$`, "m"));
    expect(list.stdout).toMatch(/^l-filtered\s+orders\s+filtered\s+\+refund,chargeback,void -refund_test\s+/m);

    const json = await runCli(["mirror", "list", ...addr, "--json"]);
    const parsed = JSON.parse(json.stdout) as { mirrors: Record<string, unknown>[]; revision: string };
    expect(parsed.revision).toMatch(/^\d+$/);
    expect(parsed.mirrors.find((m) => m.mirrorId === "l-full")).toMatchObject({
      mode: "MIRROR_MODE_FULL",
      timeoutMs: 250,
      bufferSize: 20,
      ignoreFields: ["trace.id"],
      redactHeaders: ["x-session"],
      secondaryEndpoint: secondary.url,
      enabled: true,
    });
    expect(parsed.mirrors.find((m) => m.mirrorId === "l-filtered")).toMatchObject({
      includeIntents: ["refund", "chargeback", "void"],
      excludeIntents: ["refund_test"],
    });
  });

  it("enables, disables and removes a mirror; an unknown or duplicate mirror fails with its code, exit 1", async () => {
    const base = ["--source", "orders", "--shadow", shadow.url, "--mode", "full", ...addr];
    expect((await runCli(["mirror", "add", "lc-1", ...base])).code).toBe(0);
    const duplicate = await runCli(["mirror", "add", "lc-1", ...base]);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(/^latticeforge mirror: AlreadyExists: /);

    expect((await runCli(["mirror", "disable", "lc-1", ...addr])).stdout).toMatch(/^disabled mirror lc-1 at revision \d+\n$/);
    expect((await runCli(["mirror", "list", ...addr])).stdout).toMatch(/^lc-1\s.*\sdisabled$/m);
    const enabled = await runCli(["mirror", "enable", "lc-1", ...addr, "--json"]);
    expect(JSON.parse(enabled.stdout)).toMatchObject({ mirror: { mirrorId: "lc-1", enabled: true }, revision: expect.stringMatching(/^\d+$/) });
    expect((await runCli(["mirror", "remove", "lc-1", ...addr])).stdout).toMatch(/^removed mirror lc-1 at revision \d+\n$/);

    for (const sub of ["remove", "enable", "disable", "drain", "dispatch", "diff"]) {
      const missing = await runCli(["mirror", sub, "lc-1", ...addr]);
      expect(missing.code, sub).toBe(1);
      expect(missing.stderr, sub).toContain('NotFound: mirror "lc-1" not found');
    }
  });

  it("reports server-side validation naming the field, exit 1", async () => {
    const bad = await runCli(["mirror", "add", "v-1", ...addr, "--source", "orders", "--shadow", "ftp://x", "--mode", "full"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("InvalidArgument: mirror.shadow_endpoint must be an absolute http:// or https:// URL");
    const rate = await runCli(["mirror", "add", "v-1", ...addr, "--source", "orders", "--shadow", shadow.url, "--mode", "sampled", "--sample-rate", "1.5"]);
    expect(rate.stderr).toContain("InvalidArgument: mirror.sample_rate must be in [0, 1], got 1.5");
    const replay = await runCli(["mirror", "dispatch", "l-full", ...addr, "--rate-multiplier", "5000"]);
    expect(replay.stderr).toContain("InvalidArgument: rate_multiplier must be in (0, 1000], got 5000");
  });

  it("stats counts captures per mirror; drain prints the buffered requests, redacted, oldest first", async () => {
    const base = ["--source", "orders", "--shadow", shadow.url, ...addr];
    await runCli(["mirror", "add", "d-1", ...base, "--mode", "filtered", "--include", "drain_me", "--redact-header", "x-session", "--buffer-size", "2"]);
    for (const id of ["dr-1", "dr-2", "dr-3"]) await captureOrder(id, { intent: "drain_me", qty: 2 });

    const stats = await runCli(["mirror", "stats", ...addr]);
    expect(stats.stdout.split("\n")[0]).toMatch(/^MIRROR\s+CAPTURED\s+DROPPED\s+PENDING\s+DISPATCHED\s+FAILED\s+DIFFS$/);
    expect(stats.stdout).toMatch(/^d-1\s+2\s+1\s+2\s+0\s+0\s+0$/m);

    const first = await runCli(["mirror", "drain", "d-1", "--limit", "1", ...addr]);
    expect(first.code).toBe(0);
    expect(first.stdout.split("\n")).toEqual([
      expect.stringMatching(/^dr-1  POST \/orders  orders  intent drain_me  trace 4bf92f3577b34da6a3ce929d0e0e4736  mirrored \d{4}-\d\d-\d\dT[\d:.]+Z$/),
      "  authorization: [REDACTED]",
      "  host: orders.internal:8443",
      "  traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "  x-session: [REDACTED]",
      '  payload: {"orderId":"dr-1","qty":2}',
      '  production response: {"orderId":"dr-1","total":20,"generatedAt":"2026-01-01T00:00:00.000Z"}',
      "drained 1 request from d-1",
      "",
    ]);
    const rest = await runCli(["mirror", "drain", "d-1", ...addr, "--json"]);
    const drained = JSON.parse(rest.stdout) as { requests: { requestId: string; headers: Record<string, string>; payload: unknown }[] };
    expect(drained.requests.map((r) => r.requestId)).toEqual(["dr-2"]);
    expect(drained.requests[0]!.headers.authorization).toBe("[REDACTED]");
    expect(drained.requests[0]!.payload).toEqual({ orderId: "dr-2", qty: 2 });

    expect((await runCli(["mirror", "stats", ...addr])).stdout).toMatch(/^d-1\s+2\s+1\s+0\s+0\s+0\s+0$/m);
    expect((await runCli(["mirror", "drain", "d-1", ...addr])).stdout).toBe("drained 0 requests from d-1\n");
  });

  it("dispatches to the real shadow and secondary, prints each result, and reports the diffs with noise cancelled", async () => {
    await runCli([
      "mirror", "add", "x-1", ...addr, "--source", "orders", "--shadow", shadow.url, "--secondary", secondary.url,
      "--mode", "filtered", "--include", "x_order", "--timeout-ms", "300", "--redact-header", "x-session",
    ]);
    await captureOrder("x-small", { intent: "x_order", qty: 1 });
    await captureOrder("x-bulk", { intent: "x_order", qty: 3 });
    await captureOrder("x-bulk-2", { intent: "x_order", qty: 4 });
    await captureOrder("x-unknown", { intent: "x_order", production: false });
    await captureOrder("x-slow", { intent: "x_order", path: "/slow" });
    await captureOrder("x-fail", { intent: "x_order", path: "/fail" });
    const before = shadow.received.length;

    const res = await runCli(["mirror", "dispatch", "x-1", ...addr]);
    expect(res.code).toBe(0);
    const out = res.stdout.split("\n");
    expect(out[0]).toMatch(/^REQUEST\s+OUTCOME\s+LATENCY MS\s+DIFF$/);
    expect(out[1]).toMatch(/^x-small\s+ok 200\s+\d+\s+1 field differs: generatedAt \(value_changed "2026-01-01T00:00:00\.000Z" → "[^"]+"\) \[noise: generatedAt\]$/);
    expect(out[2]).toMatch(/^x-bulk\s+ok 200\s+\d+\s+2 fields differ: generatedAt \(.*\), total \(value_changed 30 → 29\) \[noise: generatedAt\]$/);
    expect(out[3]).toMatch(/^x-bulk-2\s+ok 200\s+\d+\s+2 fields differ: .*total \(value_changed 40 → 39\)/);
    expect(out[4]).toMatch(/^x-unknown\s+ok 200\s+\d+\s+not compared \(no production response\)$/);
    expect(out[5]).toMatch(/^x-slow\s+timeout: no answer within \d+ ms\s+\d+\s+-$/);
    expect(out[6]).toMatch(/^x-fail\s+http_status: shadow answered HTTP 503\s+\d+\s+-$/);
    expect(out[7]).toBe(`dispatched 6 requests to ${shadow.url}: 4 ok, 2 failed, 3 with diffs`);

    const sent = shadow.received.slice(before).find((r) => r.url === "/orders")!;
    expect(sent.headers).toMatchObject({
      host: "orders.internal-shadow:8443",
      "x-latticeforge-shadow": "x-1",
      authorization: "[REDACTED]",
      "x-session": "[REDACTED]",
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    });
    expect(secondary.received.some((r) => r.headers["x-latticeforge-shadow"] === "x-1")).toBe(true);
    expect((await runCli(["mirror", "stats", ...addr])).stdout).toMatch(/^x-1\s+6\s+0\s+0\s+6\s+2\s+3$/m);

    const report = await runCli(["mirror", "diff", "x-1", ...addr]);
    expect(report.code).toBe(1); // it alerts
    expect(report.stdout.split("\n")).toEqual([
      "mirror x-1: 6 results, 3 compared, 2 failed (timeout 1, connection 0, http_status 1)",
      "diff rate 100.00% (3 of 3) vs threshold 5.00%: ALERT",
      "noise baseline: measured (secondary endpoint)",
      "",
      "FIELD        DIFFS  NOISE  RATE    VERDICT   EXAMPLES",
      "generatedAt  3      3      100.0%  noise     x-small, x-bulk, x-bulk-2",
      "total        2      0      66.7%   reported  x-bulk, x-bulk-2",
      "",
      "recommendations:",
      "  - 33.33% of shadow requests failed (timeout 1, connection 0, http_status 1): check the shadow's health and timeout_ms before trusting its diffs.",
      "  - Diff rate 100.00% exceeds the 5.00% threshold: investigate total (2 requests) before promoting the shadow.",
      "  - Non-deterministic fields (noise): add generatedAt to ignore_fields to keep them out of diffs.",
      "",
    ]);

    const lenient = await runCli(["mirror", "diff", "x-1", "--threshold", "1", ...addr]);
    expect(lenient.code).toBe(0);
    expect(lenient.stdout).toContain("diff rate 100.00% (3 of 3) vs threshold 100.00%: ok\n");

    const json = await runCli(["mirror", "diff", "x-1", ...addr, "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      results: "6",
      compared: "3",
      alert: true,
      mostDifferingFields: ["total"],
      noiseFields: ["generatedAt"],
      fields: [
        { field: "generatedAt", verdict: "FIELD_VERDICT_NOISE" },
        { field: "total", verdict: "FIELD_VERDICT_REPORTED", exampleRequestIds: ["x-bulk", "x-bulk-2"] },
      ],
    });

    const empty = await runCli(["mirror", "dispatch", "x-1", ...addr, "--json"]);
    expect(JSON.parse(empty.stdout)).toEqual({});
  });

  it("dispatch paces a REPLAY mirror at the captured spacing divided by --rate-multiplier", async () => {
    await runCli(["mirror", "add", "r-1", ...addr, "--source", "replayed", "--shadow", shadow.url, "--mode", "replay"]);
    for (const id of ["rp-1", "rp-2", "rp-3"]) {
      await mirrorClient().capture({ requestId: id, sourceService: "replayed", intent: "create_order", path: "/orders" }, callOptions);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const before = shadow.received.length;
    const res = await runCli(["mirror", "dispatch", "r-1", "--rate-multiplier", "2", "--batch-size", "10", ...addr]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`dispatched 3 requests to ${shadow.url}: 3 ok, 0 failed, 0 with diffs`);
    const arrivals = shadow.received.slice(before).map((r) => r.at);
    expect(arrivals).toHaveLength(3);
    // Captured ≥ 300 ms apart, replayed at twice the pace: ≥ 150 ms apart (less a timer's slack).
    expect(arrivals[2]! - arrivals[0]!).toBeGreaterThanOrEqual(280);
  });

  it("diff --production --shadow compares two JSON files field by field; exit 1 when they differ", async () => {
    const production = jsonFile("production.json", { id: "o-3", total: 30, items: [{ sku: "A1", price: 10 }, { sku: "B2", price: 20 }], at: "t1" });
    const candidate = jsonFile("shadow.json", { id: "o-3", total: "29", items: [{ sku: "A1", price: 9 }], at: "t2", discount: 1 });

    const res = await runCli(["mirror", "diff", "--production", production, "--shadow", candidate, ...addr]);
    expect(res.code).toBe(1);
    expect(res.stdout.split("\n")).toEqual([
      "PATH            KIND           PRODUCTION  SHADOW",
      "at              value_changed  \"t1\"        \"t2\"",
      "discount        extra          (absent)    1",
      "items           array_length   2           1",
      "items[0].price  value_changed  10          9",
      "total           type_changed   30          \"29\"",
      "5 differing fields",
      "",
    ]);

    const ignoring = await runCli([
      "mirror", "diff", "--production", production, "--shadow", candidate, "--ignore-field", "at", "--ignore-field", "items[*].price", ...addr, "--json",
    ]);
    expect(JSON.parse(ignoring.stdout)).toMatchObject({
      hasDiff: true,
      diffs: [
        { path: "discount", kind: "DIFF_KIND_EXTRA", shadow: 1 },
        { path: "items", kind: "DIFF_KIND_ARRAY_LENGTH", production: 2, shadow: 1 },
        { path: "total", kind: "DIFF_KIND_TYPE_CHANGED", production: 30, shadow: "29" },
      ],
    });

    const same = await runCli(["mirror", "diff", "--production", production, "--shadow", production, ...addr]);
    expect(same).toMatchObject({ code: 0, stdout: "no differences\n" });
  });

  it("reports an unreadable or malformed response file, exit 1", async () => {
    const good = jsonFile("good.json", { a: 1 });
    const broken = jsonFile("broken.json", "{");
    const notJson = await runCli(["mirror", "diff", "--production", good, "--shadow", broken, ...addr]);
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toContain(`latticeforge mirror diff: ${broken}: not JSON`);
    const missing = await runCli(["mirror", "diff", "--production", join(dir, "nope.json"), "--shadow", good, ...addr]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("cannot read");
  });

  it.each([
    [["mirror"], "Usage: latticeforge mirror"],
    [["mirror", "frobnicate"], 'unknown mirror subcommand "frobnicate"'],
    [["mirror", "add", "--source", "s", "--shadow", "http://a", "--mode", "full"], "add needs a MIRROR_ID"],
    [["mirror", "add", "m", "--shadow", "http://a", "--mode", "full"], "--source is required"],
    [["mirror", "add", "m", "--source", "s", "--shadow", "http://a"], "--mode is required"],
    [["mirror", "add", "m", "--source", "s", "--shadow", "http://a", "--mode", "fast"], '--mode must be one of full, sampled, filtered, replay, got "fast"'],
    [["mirror", "add", "m", "--source", "s", "--shadow", "http://a", "--mode", "sampled", "--sample-rate", "half"], "--sample-rate must be a number >= 0"],
    [["mirror", "add", "m", "--source", "s", "--shadow", "http://a", "--mode", "filtered", "--include", "a,,b"], '--include must be names separated by commas, got "a,,b"'],
    [["mirror", "add", "m", "--source", "s", "--shadow", "http://a", "--mode", "full", "--timeout-ms", "0"], "--timeout-ms must be at least 1"],
    [["mirror", "remove"], "remove needs a MIRROR_ID"],
    [["mirror", "drain", "m", "--limit", "0"], "--limit must be at least 1"],
    [["mirror", "dispatch", "m", "--rate-multiplier", "fast"], "--rate-multiplier must be a number >= 0"],
    [["mirror", "diff"], "diff needs a MIRROR_ID, or --production FILE --shadow FILE"],
    [["mirror", "diff", "m", "--production", "a.json", "--shadow", "b.json"], "not both"],
    [["mirror", "diff", "--production", "a.json"], "--shadow is required"],
    [["mirror", "diff", "--production", "-", "--shadow", "-"], "cannot both be - (stdin)"],
    [["mirror", "diff", "m", "--threshold=-1"], "--threshold must be a number >= 0"],
    [["mirror", "watch", "--from=-1"], "--from must be at least 0"],
    [["mirror", "list", "--bogus"], "Unknown option '--bogus'"],
  ])("%j is a usage error (exit 2): %s", async (args, message) => {
    const res = await runCli(args.length === 1 ? args : [...args, ...addr]);
    expect(res.code).toBe(2);
    expect(res.stderr + res.stdout).toContain(message);
  });

  it("watch prints the mirrors, then each change live, and stops on Ctrl-C", async () => {
    const watch = spawnCli(["mirror", "watch", ...addr]);
    try {
      const snapshot = await lineMatching(watch, /^snapshot at revision \d+: \d+ mirrors?$/);
      const at = Number(/revision (\d+)/.exec(snapshot)![1]);
      expect(cliLines(watch)).toContainEqual(expect.stringMatching(/^ {2}l-full {2}orders {2}full {2}all {2}/));

      const client = mirrorClient();
      const added = await client.addMirror(
        { mirror: { mirrorId: "w-1", sourceService: "watched", shadowEndpoint: shadow.url, mode: MirrorMode.FULL, timeoutMs: 100 } },
        callOptions,
      );
      const disabled = await client.disableMirror({ mirrorId: "w-1" }, callOptions);
      const removed = await client.removeMirror({ mirrorId: "w-1" }, callOptions);

      expect(Number(added.revision)).toBeGreaterThan(at);
      await lineMatching(watch, new RegExp(`^${removed.revision}  REMOVED  w-1  `));
      expect(cliLines(watch).filter((line) => line.includes("w-1"))).toEqual([
        `${added.revision}  ADDED  w-1  watched  full  all  ${shadow.url}  -  100  1000  enabled`,
        `${disabled.revision}  UPDATED  w-1  watched  full  all  ${shadow.url}  -  100  1000  disabled`,
        `${removed.revision}  REMOVED  w-1  watched  full  all  ${shadow.url}  -  100  1000  disabled`,
      ]);
      expect(await interruptCli(watch)).toBe(0);
    } finally {
      watch.child.kill();
    }
  });

  it("watch --from N prints only the changes after N; --json prints each message as protobuf JSON", async () => {
    const client = mirrorClient();
    const { revision } = await client.addMirror(
      { mirror: { mirrorId: "wj-1", sourceService: "watched", shadowEndpoint: shadow.url, mode: MirrorMode.FULL, timeoutMs: 100 } },
      callOptions,
    );
    const watch = spawnCli(["mirror", "watch", "--from", String(revision), "--json", ...addr]);
    try {
      let stdout = "";
      watch.child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      await client.disableMirror({ mirrorId: "wj-1" }, callOptions);
      await within(
        (async () => {
          while (!stdout.includes("MIRROR_EVENT_TYPE_UPDATED")) await new Promise((resolve) => setTimeout(resolve, 20));
          while (!stdout.endsWith("}\n")) await new Promise((resolve) => setTimeout(resolve, 20));
        })(),
        10_000,
        "the change message",
      );
      expect(await interruptCli(watch)).toBe(0);
      const documents = stdout.split(/\n(?=\{)/).map((text) => JSON.parse(text) as Record<string, unknown>);
      expect(documents).toEqual([
        {
          change: {
            revision: String(revision + 1n),
            events: [{ type: "MIRROR_EVENT_TYPE_UPDATED", mirror: expect.objectContaining({ mirrorId: "wj-1", enabled: false }) }],
          },
        },
      ]);
    } finally {
      watch.child.kill();
    }
  });
});

describe("latticeforge mirror watch across a server restart", () => {
  it("resumes from the last revision it printed and delivers the change made while it was disconnected", async () => {
    const dir = mkdtempSync(join(tmpdir(), "latticeforge-mirror-watch-"));
    let server = await startTestControlPlane({ dir });
    const port = server.grpcAddress.split(":")[1]!;
    const mirror = (mirrorId: string) => ({
      mirror: { mirrorId, sourceService: "orders", shadowEndpoint: "http://127.0.0.1:9", mode: MirrorMode.FULL, timeoutMs: 100 },
    });
    const watch = spawnCli(["mirror", "watch", "--addr", server.grpcAddress]);
    try {
      await lineMatching(watch, /^snapshot at revision \d+: 0 mirrors$/);
      await server.grpc(MirrorService).addMirror(mirror("before"), callOptions);
      const seen = await lineMatching(watch, /  ADDED  before  /);
      await server.stop();

      // While the watch cannot connect: the same database served on another
      // port records a new mirror. Only a resume by revision can deliver it.
      const elsewhere = await startTestControlPlane({ dir });
      await elsewhere.grpc(MirrorService).addMirror(mirror("during"), callOptions);
      await elsewhere.stop();

      server = await startTestControlPlane({ dir, flags: { listen: `127.0.0.1:${port}` } });
      const resumed = await lineMatching(watch, /  ADDED  during  /, 15_000);
      expect(Number(resumed.split(" ")[0])).toBe(Number(seen.split(" ")[0]) + 1);
      expect(watch.stderr()).toMatch(new RegExp(`^watch: .*; resuming from revision ${seen.split(" ")[0]} in \\d+ ms$`, "m"));
      expect(cliLines(watch).filter((line) => line.startsWith("snapshot"))).toHaveLength(1);
      expect(cliLines(watch).filter((line) => line.includes("before"))).toHaveLength(1);
      expect(await interruptCli(watch)).toBe(0);
    } finally {
      watch.child.kill();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
