import { Code } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MirrorMode, MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { callOptions as opts, mirrorConfig, type MirrorClient, type MirrorConfigInit } from "../../fixtures/mirror.js";
import { rpcError } from "../../fixtures/tracing.js";

const shadowUrl = "http://127.0.0.1:9";

describe.each(["grpc", "connect"] as const)("MirrorService lifecycle over %s", (transport) => {
  let server: TestControlPlane;
  let mirror: MirrorClient;
  beforeAll(async () => {
    server = await startTestControlPlane({ flags: { "max-mirrors": "3" } });
    mirror = transport === "grpc" ? server.grpc(MirrorService) : server.http(MirrorService);
  });
  afterAll(() => server.stop());
  beforeEach(async () => {
    for (const { mirrorId } of (await mirror.listMirrors({}, opts)).mirrors) await mirror.removeMirror({ mirrorId }, opts);
  });

  async function failure(promise: Promise<unknown>, code: Code): Promise<string> {
    const error = await rpcError(promise);
    expect(error.code, error.message).toBe(code);
    return error.message;
  }

  it("adds a mirror with defaults filled in and the server's created_at, and gets it back", async () => {
    const before = Date.now();
    const added = await mirror.addMirror({ mirror: mirrorConfig("m-add", shadowUrl, { redactHeaders: ["X-Session"] }) }, opts);
    const config = added.mirror!;
    expect(config).toMatchObject({
      mirrorId: "m-add",
      sourceService: "orders",
      shadowEndpoint: shadowUrl,
      mode: MirrorMode.FULL,
      enabled: true,
      bufferSize: 1000,
      timeoutMs: 2000,
      redactHeaders: ["x-session"],
      secondaryEndpoint: "",
    });
    expect(timestampMs(config.createdAt!)).toBeGreaterThanOrEqual(before - 1);
    expect(timestampMs(config.createdAt!)).toBeLessThanOrEqual(Date.now() + 1);
    expect(added.revision).toBeGreaterThan(0n);
    expect((await mirror.getMirror({ mirrorId: "m-add" }, opts)).mirror).toEqual(config);
  });

  it("keeps every config field as sent", async () => {
    const full: MirrorConfigInit = mirrorConfig("m-fields", "https://shadow.example.com:8443/base", {
      sourceService: "payments",
      mode: MirrorMode.FILTERED,
      includeIntents: ["charge", "refund"],
      excludeIntents: ["refund"],
      timeoutMs: 750,
      enabled: false,
      bufferSize: 42,
      ignoreFields: ["meta.generatedAt", "items[*].id", 'headers["x-req"]'],
      redactHeaders: ["x-card"],
      secondaryEndpoint: "http://[::1]:8080",
    });
    const config = (await mirror.addMirror({ mirror: full }, opts)).mirror!;
    const { createdAt: _, $typeName: __, ...rest } = config;
    expect(rest).toEqual({ ...full, sampleRate: 0 });
  });

  it("adds a mirror disabled when enabled is false, and enables and disables it with new revisions", async () => {
    const added = await mirror.addMirror({ mirror: mirrorConfig("m-toggle", shadowUrl, { enabled: false }) }, opts);
    expect(added.mirror!.enabled).toBe(false);
    const enabled = await mirror.enableMirror({ mirrorId: "m-toggle" }, opts);
    expect(enabled.mirror!.enabled).toBe(true);
    expect(enabled.revision).toBe(added.revision + 1n);
    const disabled = await mirror.disableMirror({ mirrorId: "m-toggle" }, opts);
    expect(disabled.mirror!.enabled).toBe(false);
    expect(disabled.revision).toBe(added.revision + 2n);
    // Disabling again changes nothing: revision 0.
    const again = await mirror.disableMirror({ mirrorId: "m-toggle" }, opts);
    expect(again).toMatchObject({ revision: 0n, mirror: { enabled: false } });
    expect((await mirror.listMirrors({}, opts)).revision).toBe(disabled.revision);
  });

  it("lists mirrors by mirror_id with the current revision, and removes them", async () => {
    await mirror.addMirror({ mirror: mirrorConfig("m-b", shadowUrl) }, opts);
    await mirror.addMirror({ mirror: mirrorConfig("m-a", shadowUrl) }, opts);
    const last = await mirror.addMirror({ mirror: mirrorConfig("m-c", shadowUrl) }, opts);
    const list = await mirror.listMirrors({}, opts);
    expect(list.mirrors.map((m) => m.mirrorId)).toEqual(["m-a", "m-b", "m-c"]);
    expect(list.revision).toBe(last.revision);
    const removed = await mirror.removeMirror({ mirrorId: "m-b" }, opts);
    expect(removed.revision).toBe(last.revision + 1n);
    expect((await mirror.listMirrors({}, opts)).mirrors.map((m) => m.mirrorId)).toEqual(["m-a", "m-c"]);
    expect(await failure(mirror.getMirror({ mirrorId: "m-b" }, opts), Code.NotFound)).toBe('mirror "m-b" not found');
  });

  it("answers ALREADY_EXISTS for a duplicate mirror_id and keeps the first", async () => {
    await mirror.addMirror({ mirror: mirrorConfig("m-dup", shadowUrl) }, opts);
    const message = await failure(mirror.addMirror({ mirror: mirrorConfig("m-dup", "http://other:1") }, opts), Code.AlreadyExists);
    expect(message).toBe('mirror "m-dup" already exists');
    expect((await mirror.getMirror({ mirrorId: "m-dup" }, opts)).mirror!.shadowEndpoint).toBe(shadowUrl);
  });

  it("answers RESOURCE_EXHAUSTED past max-mirrors, and ALREADY_EXISTS first for a duplicate at capacity", async () => {
    for (const id of ["m-1", "m-2", "m-3"]) await mirror.addMirror({ mirror: mirrorConfig(id, shadowUrl) }, opts);
    const message = await failure(mirror.addMirror({ mirror: mirrorConfig("m-4", shadowUrl) }, opts), Code.ResourceExhausted);
    expect(message).toBe("at most 3 mirrors may be configured, 3 are: remove one first");
    await failure(mirror.addMirror({ mirror: mirrorConfig("m-1", shadowUrl) }, opts), Code.AlreadyExists);
    await mirror.removeMirror({ mirrorId: "m-2" }, opts);
    await mirror.addMirror({ mirror: mirrorConfig("m-4", shadowUrl) }, opts);
    expect((await mirror.listMirrors({}, opts)).mirrors).toHaveLength(3);
  });

  it.each<[string, (client: MirrorClient) => Promise<unknown>]>([
    ["RemoveMirror", (c) => c.removeMirror({ mirrorId: "ghost" }, opts)],
    ["EnableMirror", (c) => c.enableMirror({ mirrorId: "ghost" }, opts)],
    ["DisableMirror", (c) => c.disableMirror({ mirrorId: "ghost" }, opts)],
    ["GetMirror", (c) => c.getMirror({ mirrorId: "ghost" }, opts)],
    ["ShouldMirror", (c) => c.shouldMirror({ mirrorId: "ghost", intent: "x", requestId: "r" }, opts)],
    ["PendingCount", (c) => c.pendingCount({ mirrorId: "ghost" }, opts)],
    ["Drain", (c) => c.drain({ mirrorId: "ghost" }, opts)],
    ["Dispatch", (c) => c.dispatch({ mirrorId: "ghost" }, opts)],
    ["AnalyzeDiffs", (c) => c.analyzeDiffs({ mirrorId: "ghost" }, opts)],
  ])("answers NOT_FOUND from %s for an unknown mirror", async (_, call) => {
    expect(await failure(call(mirror), Code.NotFound)).toBe('mirror "ghost" not found');
  });

  it.each<[string, (client: MirrorClient) => Promise<unknown>]>([
    ["RemoveMirror", (c) => c.removeMirror({ mirrorId: "" }, opts)],
    ["EnableMirror", (c) => c.enableMirror({ mirrorId: "" }, opts)],
    ["DisableMirror", (c) => c.disableMirror({ mirrorId: "" }, opts)],
    ["GetMirror", (c) => c.getMirror({ mirrorId: "" }, opts)],
    ["ShouldMirror", (c) => c.shouldMirror({ mirrorId: "" }, opts)],
    ["Drain", (c) => c.drain({ mirrorId: "" }, opts)],
    ["Dispatch", (c) => c.dispatch({ mirrorId: "" }, opts)],
    ["AnalyzeDiffs", (c) => c.analyzeDiffs({ mirrorId: "" }, opts)],
  ])("answers INVALID_ARGUMENT naming mirror_id from %s when it is empty", async (_, call) => {
    expect(await failure(call(mirror), Code.InvalidArgument)).toBe("mirror_id must not be empty");
  });

  it("answers INVALID_ARGUMENT naming mirror_id when it has characters outside the rule", async () => {
    expect(await failure(mirror.getMirror({ mirrorId: "bad id" }, opts), Code.InvalidArgument)).toMatch(/^mirror_id must be at most 128 letters/);
    expect(await failure(mirror.pendingCount({ mirrorId: "-x" }, opts), Code.InvalidArgument)).toMatch(/^mirror_id /);
  });

  it("refuses an AddMirror without a mirror", async () => {
    expect(await failure(mirror.addMirror({}, opts), Code.InvalidArgument)).toBe("mirror is required");
  });

  it.each<[string, Partial<MirrorConfigInit>, RegExp]>([
    ["mirror.mirror_id", { mirrorId: "" }, /must not be empty/],
    ["mirror.mirror_id", { mirrorId: "a".repeat(129) }, /must be at most 128/],
    ["mirror.source_service", { sourceService: "" }, /must not be empty/],
    ["mirror.source_service", { sourceService: "orders svc" }, /./],
    ["mirror.shadow_endpoint", { shadowEndpoint: "" }, /must not be empty/],
    ["mirror.shadow_endpoint", { shadowEndpoint: "ftp://shadow:21" }, /must be an absolute http:\/\/ or https:\/\/ URL/],
    ["mirror.shadow_endpoint", { shadowEndpoint: "shadow:8080" }, /must be an absolute http/],
    ["mirror.shadow_endpoint", { shadowEndpoint: "http://user:pw@shadow" }, /must not contain credentials/],
    ["mirror.shadow_endpoint", { shadowEndpoint: "http://shadow/?q=1" }, /must not have a query or fragment/],
    ["mirror.shadow_endpoint", { shadowEndpoint: "http://shadow:0" }, /port must be 1..65535/],
    ["mirror.shadow_endpoint", { shadowEndpoint: "http://sha_dow" }, /host must be a hostname/],
    ["mirror.mode", { mode: MirrorMode.UNSPECIFIED }, /must be one of FULL, SAMPLED, FILTERED, REPLAY, got unset/],
    ["mirror.sample_rate", { sampleRate: 1.5 }, /must be in \[0, 1\], got 1.5/],
    ["mirror.sample_rate", { sampleRate: -0.1 }, /must be in \[0, 1\]/],
    ["mirror.sample_rate", { mode: MirrorMode.SAMPLED, sampleRate: 0 }, /must be > 0 in SAMPLED mode/],
    ["mirror.sample_rate", { mode: MirrorMode.SAMPLED, sampleRate: 0.00001 }, /sampling resolution is 1\/10000/],
    ["mirror.include_intents", { mode: MirrorMode.FILTERED }, /or exclude_intents must name at least one intent in FILTERED mode/],
    ["mirror.include_intents", { includeIntents: ["a"] }, /must be empty unless mode is FILTERED, got 1 in FULL mode/],
    ["mirror.exclude_intents", { mode: MirrorMode.REPLAY, excludeIntents: ["a"] }, /must be empty unless mode is FILTERED/],
    ["mirror.include_intents[1]", { mode: MirrorMode.FILTERED, includeIntents: ["a", ""] }, /must not be empty/],
    ["mirror.exclude_intents[0]", { mode: MirrorMode.FILTERED, excludeIntents: ["bad\u0001"] }, /control characters/],
    ["mirror.timeout_ms", { timeoutMs: 0 }, /must be an integer in 1..600000, got 0/],
    ["mirror.timeout_ms", { timeoutMs: -5 }, /got -5/],
    ["mirror.timeout_ms", { timeoutMs: 600_001 }, /got 600001/],
    ["mirror.buffer_size", { bufferSize: -1 }, /must be an integer in 1..100000, got -1/],
    ["mirror.buffer_size", { bufferSize: 100_001 }, /got 100001/],
    ["mirror.ignore_fields[1]", { ignoreFields: ["ok", ""] }, /must not be empty/],
    ["mirror.ignore_fields[0]", { ignoreFields: ["a..b"] }, /./],
    ["mirror.redact_headers[0]", { redactHeaders: ["bad header"] }, /must be an HTTP header name/],
    ["mirror.secondary_endpoint", { secondaryEndpoint: "not a url" }, /must be an absolute http/],
  ])("answers INVALID_ARGUMENT naming %s (%#)", async (field, overrides, rule) => {
    const message = await failure(mirror.addMirror({ mirror: mirrorConfig("m-bad", shadowUrl, overrides) }, opts), Code.InvalidArgument);
    expect(message.startsWith(`${field} `), message).toBe(true);
    expect(message).toMatch(rule);
    expect((await mirror.listMirrors({}, opts)).mirrors).toEqual([]);
  });
});
