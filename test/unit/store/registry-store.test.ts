import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultHealthScoring, warmupFactor } from "../../../server/core/registry/health-score.js";
import {
  defaultRegistryLimits,
  effectiveWeight,
  isRoutable,
  type RegistryLimits,
  type TopologyEvent,
} from "../../../server/core/registry/model.js";
import { closeDatabase, openDatabase, type SqliteDatabase } from "../../../server/store/database.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";
import { migrations } from "../../../server/store/migrations.js";
import { RegistryStore } from "../../../server/store/registry-store.js";
import type { RevisionedChange } from "../../../server/store/revision-log.js";
import { healthInput, instanceInput, t0 } from "../registry/builders.js";

let db: SqliteDatabase;
let committer: GroupCommitter;
let store: RegistryStore;
let changes: RevisionedChange<TopologyEvent>[];
let clock: number;
/** A temp directory per test, for file databases. */
let dir: string;

/** No staleness unless a test asks for it. */
const noStaleness: Partial<RegistryLimits> = { heartbeatTimeoutMs: 3_600_000, deregisterStaleAfterMs: 0 };

function open(path: string, schema = migrations, limits = noStaleness): void {
  db = openDatabase({ path, durability: "full", migrations: schema });
  committer = new GroupCommitter(db);
  store = new RegistryStore(db, committer, {
    limits: defaultRegistryLimits(limits),
    scoring: defaultHealthScoring({ windowMs: 10_000, latencyTargetMs: 250, warmupMs: 300_000 }),
    now: () => clock,
  });
  changes = [];
  store.onChange((change) => changes.push(change));
}

function close(): void {
  committer.close();
  closeDatabase(db);
}

/** Rows changed on this connection so far. */
function totalChanges(): number {
  return (db.prepare("SELECT total_changes() AS n").get() as { n: number }).n;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "registry-store-"));
  clock = t0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("RegistryStore health scoring", () => {
  /**
   * slow: latency 1000 ms against 250 (degraded after ≈27.08 s); warm: failed
   * and passed again (warming up from t0 + 1 s); plain: untouched.
   */
  async function populate(): Promise<void> {
    for (const instanceId of ["plain", "slow", "warm"]) await store.register(instanceInput({ instanceId, weight: 50 }));
    await store.updateHealth(healthInput("slow", { latencyMs: 1000 }));
    await store.updateHealth(healthInput("warm", { healthy: false, consecutiveFailures: 1 }));
    clock = t0 + 1_000;
    await store.updateHealth(healthInput("warm", { healthy: true }));
    clock = t0 + 27_100;
    await store.reap();
    clock = t0 + 61_000;
    await store.reap();
  }

  it("keeps scores, degraded flags and warm-ups across a reopen", async () => {
    const path = join(dir, "lf.sqlite");
    open(path);
    await populate();
    const before = store.state.records();
    const revision = store.log.currentRevision;
    expect(store.state.get("slow")).toMatchObject({ degraded: true });
    expect(store.state.get("warm")!.warmup).toEqual({ startedAtMs: t0 + 1_000, endsAtMs: t0 + 301_000, step: 2 });
    close();

    open(path);
    try {
      expect(store.state.records()).toEqual(before);
      expect(store.state.records().map(effectiveWeight)).toEqual([50, 50, 50 * warmupFactor(2)]);
      expect(store.log.currentRevision).toBe(revision);
      // The ramp goes on where it was: step 3 at 90 s.
      clock = t0 + 91_000;
      const { revision: next } = await store.reap();
      expect(next).toBe(revision + 1);
      expect(effectiveWeight(store.state.get("warm")!)).toBe(50 * warmupFactor(3));
      expect(changes.map((c) => c.events.map((e) => e.record.instance.instanceId))).toEqual([["warm"]]);
    } finally {
      close();
    }
  });

  it("writes heartbeats without a revision, score included, and keeps them across a reopen", async () => {
    const path = join(dir, "lf.sqlite");
    open(path);
    await store.register(instanceInput({ instanceId: "a" }));
    await store.updateHealth(healthInput("a", { latencyMs: 500 }));
    clock = t0 + 5_000;
    const beat = await store.heartbeat("a", 4);
    expect(beat.revision).toBe(0);
    const record = store.state.get("a")!;
    expect(record.score.value).toBeCloseTo(0.5 + 0.5 * Math.exp(-0.5), 12);
    close();
    open(path);
    try {
      expect(store.state.get("a")).toEqual(record);
    } finally {
      close();
    }
  });

  it("announces a score crossing with a revision, and a pass that changes nothing writes no row", async () => {
    open(":memory:");
    try {
      await populate();
      const slow = changes.flatMap(({ revision, events }) =>
        events.filter((e) => e.record.instance.instanceId === "slow").map((event) => ({ revision, event })),
      );
      expect(slow.map(({ event }) => [event.kind, event.record.degraded])).toEqual([
        ["added", false],
        ["updated", true],
      ]);
      expect(slow[1]!.revision).toBeGreaterThan(slow[0]!.revision);
      const written = totalChanges();
      const revision = store.log.currentRevision;
      clock = t0 + 61_500;
      expect((await store.reap()).revision).toBe(0);
      expect(totalChanges()).toBe(written);
      expect(store.log.currentRevision).toBe(revision);
    } finally {
      close();
    }
  });

  it("upgrades a version-4 database: rows and old revision-log events get scores, as legacyRecord defines", async () => {
    const path = join(dir, "old.sqlite");
    const old = openDatabase({ path, durability: "full", migrations: migrations.filter((m) => m.version <= 4) });
    const insert = old.prepare(
      `INSERT INTO registry_instances (instance_id, service_name, endpoint, region, zone, weight, metadata,
         registered_at_ms, last_heartbeat_ms, stale, active_connections, health)
       VALUES (?, 'checkout', '10.0.0.1:80', 'eu', 'eu-a', 40, '{}', ?, ?, ?, 0, ?)`,
    );
    const failing = JSON.stringify({ instanceId: "sick", healthy: false, latencyMs: 3, consecutiveFailures: 2, lastCheckMs: t0 + 5 });
    const passing = JSON.stringify({ instanceId: "fine", healthy: true, latencyMs: 3, consecutiveFailures: 0, lastCheckMs: t0 + 5 });
    insert.run("fine", t0, t0 + 10, 0, passing);
    insert.run("sick", t0, t0 + 20, 0, failing);
    insert.run("quiet", t0, t0 + 30, 1, null);
    insert.run("new", t0, t0 + 40, 0, null);
    const legacyEvent = {
      kind: "updated",
      record: {
        instance: {
          instanceId: "sick",
          serviceName: "checkout",
          endpoint: "10.0.0.1:80",
          region: "eu",
          zone: "eu-a",
          weight: 40,
          metadata: {},
          registeredAtMs: t0,
          lastHeartbeatMs: t0 + 20,
        },
        health: JSON.parse(failing) as unknown,
        healthy: false,
        stale: false,
        activeConnections: 0,
      },
    };
    old.prepare("INSERT INTO revision_log_topology (revision, seq, created_at_ms, payload) VALUES (1, 0, ?, ?)").run(
      t0,
      Buffer.from(JSON.stringify(legacyEvent)),
    );
    old.prepare("UPDATE revision_streams SET current = 1 WHERE stream = 'topology'").run();
    closeDatabase(old);

    clock = t0 + 100;
    open(path);
    try {
      const scores = Object.fromEntries(store.state.records().map((r) => [r.instance.instanceId, r.score]));
      expect(scores).toEqual({
        fine: { value: 1, signal: 1, atMs: t0 + 10 },
        new: { value: 1, signal: 1, atMs: t0 + 40 },
        quiet: { value: 1, signal: 0, atMs: t0 + 30 },
        sick: { value: 1, signal: 0, atMs: t0 + 20 },
      });
      for (const record of store.state.records()) {
        expect(record.degraded).toBe(false);
        expect(record.warmup).toBeUndefined();
      }
      const [change] = store.log.readAfter(0, 10);
      expect(change!.revision).toBe(1);
      expect(change!.events[0]).toEqual({
        ...legacyEvent,
        record: { ...legacyEvent.record, score: { value: 1, signal: 0, atMs: t0 + 20 }, degraded: false },
      });
      // The failing instance's score has decayed from 1 since its last heartbeat.
      clock = t0 + 20 + 12_100;
      await store.reap();
      expect(store.state.get("sick")!.degraded).toBe(true);
      expect(store.state.get("fine")!.degraded).toBe(false);
    } finally {
      close();
    }
  });
});

describe("RegistryStore startup grace", () => {
  it("counts silence from the reopen: after an outage longer than the heartbeat timeout nothing turns stale at once", async () => {
    const path = join(dir, "lf.sqlite");
    const limits = { heartbeatTimeoutMs: 30_000, deregisterStaleAfterMs: 90_000 };
    open(path, migrations, limits);
    for (const instanceId of ["a", "b"]) await store.register(instanceInput({ instanceId }));
    close();

    const reopenedAt = t0 + 600_000; // ten minutes down
    clock = reopenedAt;
    open(path, migrations, limits);
    try {
      for (const t of [reopenedAt + 1, reopenedAt + 30_000]) {
        clock = t;
        expect((await store.reap()).revision).toBe(0);
        expect(store.state.records().every(isRoutable)).toBe(true);
      }
      clock = reopenedAt + 20_000;
      await store.heartbeat("b", undefined);
      clock = reopenedAt + 30_001;
      const pass = await store.reap();
      expect(pass.revision).toBeGreaterThan(0);
      expect(changes.flatMap((c) => c.events.map((e) => [e.kind, e.record.instance.instanceId, e.record.stale]))).toEqual([
        ["updated", "a", true],
      ]);
      expect(store.state.get("b")!.stale).toBe(false);
    } finally {
      close();
    }
  });
});
