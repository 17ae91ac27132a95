import { describe, expect, it } from "vitest";
import { AlreadyExistsError, InvalidFieldError, LimitExceededError, NotFoundError } from "../../../server/core/errors.js";
import { selectMirrors, shouldMirror, type MirrorDecisionReason, type MirrorSubject } from "../../../server/core/mirror/decision.js";
import { checkAddMirror, requireMirror, withEnabled } from "../../../server/core/mirror/lifecycle.js";
import { defaultMirrorLimits, type MirrorConfig } from "../../../server/core/mirror/model.js";
import { isSampledIn } from "../../../server/core/mirror/sampling.js";
import { mirrorConfig, mulberry32, thrown, uuid } from "./builders.js";

const sampled = mirrorConfig({ mode: "sampled", sampleRate: 0.1 });
const filtered = (include: string[], exclude: string[] = []): MirrorConfig =>
  mirrorConfig({ mode: "filtered", includeIntents: include, excludeIntents: exclude });

/** Request ids whose consistent decision at 10% is known: found by search over a fixed list. */
const ids = Array.from({ length: 200 }, (_, i) => `req-${i}`);
const sampledInId = ids.find((id) => isSampledIn(id, 0.1))!;
const sampledOutId = ids.find((id) => !isSampledIn(id, 0.1))!;

describe("shouldMirror", () => {
  it.each<[string, MirrorConfig, MirrorSubject, boolean, MirrorDecisionReason]>([
    ["FULL mirrors any intent", mirrorConfig(), { intent: "anything" }, true, "full"],
    ["REPLAY records everything, ignoring rate and filters", mirrorConfig({ mode: "replay", sampleRate: 0 }), { intent: "x" }, true, "replay"],
    ["a disabled FULL mirror never mirrors", mirrorConfig({ enabled: false }), { intent: "x" }, false, "disabled"],
    ["a disabled REPLAY mirror never records", mirrorConfig({ mode: "replay", enabled: false }), { intent: "x" }, false, "disabled"],
    ["another source service does not apply", mirrorConfig(), { intent: "x", sourceService: "billing" }, false, "source_mismatch"],
    ["the same source service applies", mirrorConfig(), { intent: "x", sourceService: "orders" }, true, "full"],
    ["SAMPLED: seed below the rate", sampled, { intent: "x", sampleSeed: 0.05 }, true, "sampled_in"],
    ["SAMPLED: seed equal to the rate is out", sampled, { intent: "x", sampleSeed: 0.1 }, false, "sampled_out"],
    ["SAMPLED: seed above the rate", sampled, { intent: "x", sampleSeed: 0.5 }, false, "sampled_out"],
    ["SAMPLED: seed 0 at rate 1", mirrorConfig({ mode: "sampled", sampleRate: 1 }), { intent: "x", sampleSeed: 0 }, true, "sampled_in"],
    ["SAMPLED: a seed overrides the hash", sampled, { intent: "x", requestId: sampledOutId, sampleSeed: 0 }, true, "sampled_in"],
    ["SAMPLED: request_id hashed in", sampled, { intent: "x", requestId: sampledInId }, true, "sampled_in"],
    ["SAMPLED: request_id hashed out", sampled, { intent: "x", requestId: sampledOutId }, false, "sampled_out"],
    ["SAMPLED: trace_id when request_id is empty", sampled, { intent: "x", requestId: "", traceId: sampledInId }, true, "sampled_in"],
    ["SAMPLED: no key and no seed", sampled, { intent: "x" }, false, "no_sample_key"],
    ["FILTERED: included", filtered(["pay"]), { intent: "pay" }, true, "intent_included"],
    ["FILTERED: not included", filtered(["pay"]), { intent: "refund" }, false, "intent_not_included"],
    ["FILTERED: excluded", filtered([], ["health"]), { intent: "health" }, false, "intent_excluded"],
    ["FILTERED: empty include admits all not excluded", filtered([], ["health"]), { intent: "pay" }, true, "intent_included"],
    ["FILTERED: exclude wins over include", filtered(["pay"], ["pay"]), { intent: "pay" }, false, "intent_excluded"],
    ["FILTERED: intents are case-sensitive", filtered(["pay"]), { intent: "Pay" }, false, "intent_not_included"],
    ["FILTERED: a disabled mirror never mirrors", { ...filtered(["pay"]), enabled: false }, { intent: "pay" }, false, "disabled"],
  ])("%s", (_, config, subject, mirror, reason) => {
    expect(shouldMirror(config, subject)).toMatchObject({ mirror, reason });
  });

  it("explains a hash decision with bucket, threshold and key source", () => {
    expect(shouldMirror(sampled, { intent: "x", traceId: sampledOutId }).detail).toMatch(
      /^bucket \d+ >= threshold 1000 \(sample_rate 0\.1, key from trace_id\)$/,
    );
  });

  it("gives one request the same decision in every SAMPLED mirror of the same rate", () => {
    const random = mulberry32(7);
    const mirrors = ["a", "b", "c"].map((mirrorId) => mirrorConfig({ mirrorId, mode: "sampled", sampleRate: 0.3 }));
    for (let i = 0; i < 500; i++) {
      const requestId = uuid(random);
      const decisions = mirrors.map((config) => shouldMirror(config, { intent: "x", requestId }).mirror);
      expect(new Set(decisions).size).toBe(1);
    }
  });

  it.each([1, -0.1, 1.5, Number.NaN])("rejects sample_seed %s", (seed) => {
    const error = thrown(() => shouldMirror(sampled, { intent: "x", sampleSeed: seed }));
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as InvalidFieldError).message).toBe(`sample_seed must be in [0, 1), got ${seed}`);
  });
});

describe("selectMirrors", () => {
  const request = { requestId: sampledInId, traceId: "", sourceService: "orders", intent: "pay", headers: {} };

  it("picks the enabled, applicable, deciding mirrors in mirror_id order", () => {
    const configs = [
      mirrorConfig({ mirrorId: "z-full" }),
      mirrorConfig({ mirrorId: "a-sampled", mode: "sampled", sampleRate: 0.1 }),
      mirrorConfig({ mirrorId: "m-disabled", enabled: false }),
      mirrorConfig({ mirrorId: "b-billing", sourceService: "billing" }),
      mirrorConfig({ mirrorId: "c-filtered-out", mode: "filtered", excludeIntents: ["pay"] }),
      mirrorConfig({ mirrorId: "d-replay", mode: "replay" }),
    ];
    expect(selectMirrors(configs, request).map((config) => config.mirrorId)).toEqual(["a-sampled", "d-replay", "z-full"]);
  });

  it("never re-mirrors a request that carries the shadow marker", () => {
    expect(selectMirrors([mirrorConfig()], { ...request, headers: { "x-latticeforge-shadow": "m" } })).toEqual([]);
  });
});

describe("mirror lifecycle", () => {
  const limits = defaultMirrorLimits({ maxMirrors: 2 });

  it("disables and re-enables a mirror; capture follows", () => {
    const config = mirrorConfig();
    const disabled = withEnabled(config, false);
    expect(shouldMirror(disabled, { intent: "x" })).toMatchObject({ mirror: false, reason: "disabled" });
    expect(selectMirrors([disabled], { requestId: "r", traceId: "", sourceService: "orders", intent: "x", headers: {} })).toEqual([]);
    const enabled = withEnabled(disabled, true);
    expect(shouldMirror(enabled, { intent: "x" })).toMatchObject({ mirror: true, reason: "full" });
    expect(config.enabled).toBe(true);
  });

  it.each([true, false])("returns the same object when enabled is already %s (a no-op)", (enabled) => {
    const config = mirrorConfig({ enabled });
    expect(withEnabled(config, enabled)).toBe(config);
  });

  it.each<[string, string[], string, unknown, string]>([
    ["a duplicate id", ["a"], "a", AlreadyExistsError, 'mirror "a" already exists'],
    ["a duplicate id at capacity", ["a", "b"], "a", AlreadyExistsError, 'mirror "a" already exists'],
    ["an eleventh mirror past the limit", ["a", "b"], "c", LimitExceededError, "at most 2 mirrors may be configured, 2 are: remove one first"],
  ])("refuses %s", (_, existing, mirrorId, kind, message) => {
    const error = thrown(() => checkAddMirror(new Set(existing), mirrorId, limits));
    expect(error).toBeInstanceOf(kind);
    expect((error as Error).message).toBe(message);
  });

  it("admits a new id below the limit (10 by default)", () => {
    const nine = new Set(Array.from({ length: 9 }, (_, i) => `m${i}`));
    expect(() => checkAddMirror(nine, "m9", defaultMirrorLimits())).not.toThrow();
    expect(() => checkAddMirror(new Set([...nine, "m9"]), "m10", defaultMirrorLimits())).toThrow(LimitExceededError);
  });

  it("answers NOT_FOUND for an unknown mirror", () => {
    expect(thrown(() => requireMirror(undefined, "ghost"))).toBeInstanceOf(NotFoundError);
    const config = mirrorConfig();
    expect(requireMirror(config, config.mirrorId)).toBe(config);
  });
});
