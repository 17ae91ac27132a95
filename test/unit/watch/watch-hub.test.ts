import { afterEach, describe, expect, it, vi } from "vitest";
import type { RevisionedChange } from "../../../server/store/revision-log.js";
import { WatchHub, type WatchHubOptions, type WatchMessage, type WatchRequest } from "../../../server/watch/watch-hub.js";
import {
  FakeSource,
  changeRevision,
  expectEnd,
  nextMessage,
  nextMessages,
  range,
  settlesWithin,
  within,
  type TestEvent,
} from "./watch-helpers.js";

type Snapshot = readonly number[];
type Message = WatchMessage<TestEvent, Snapshot>;
type Watch = AsyncIterator<Message> & { readonly controller: AbortController };

const hubs: WatchHub<TestEvent>[] = [];

afterEach(() => {
  for (const hub of hubs.splice(0)) hub.close();
});

function ev(service: string, label = service): TestEvent {
  return { service, label };
}

/** A fake source and a hub over it, closed after the test. */
function setup(options: WatchHubOptions = {}) {
  const source = new FakeSource<TestEvent>();
  const hub = new WatchHub(source, { progressIntervalMs: 0, ...options });
  hubs.push(hub);
  /** Appends a change to the source and notifies the hub, as onCommitted does. */
  const commit = (...events: TestEvent[]): RevisionedChange<TestEvent> => {
    const change = source.append(...(events.length > 0 ? events : [ev("a")]));
    hub.notify(change);
    return change;
  };
  const watch = (request: Partial<WatchRequest<TestEvent, Snapshot>> = {}): Watch => {
    const controller = new AbortController();
    const iterable = hub.watch<Snapshot>({
      startRevision: 0,
      matches: () => true,
      snapshot: () => range(1, source.currentRevision),
      signal: controller.signal,
      ...request,
    });
    return Object.assign(iterable[Symbol.asyncIterator](), { controller });
  };
  return { source, hub, commit, watch };
}

async function revisionsOf(watch: Watch, count: number): Promise<number[]> {
  return (await nextMessages(watch, count)).map(changeRevision);
}

describe("WatchHub snapshot and changes", () => {
  it("sends a snapshot at the current revision, then each later change as the notified object", async () => {
    const { source, commit, watch } = setup();
    commit();
    commit();
    const w = watch();
    expect(await nextMessage(w)).toEqual({ kind: "snapshot", revision: 2, snapshot: [1, 2], reset: false });
    const third = commit();
    const fourth = commit();
    const [m3, m4] = await nextMessages(w, 2);
    expect(m3).toEqual({ kind: "change", change: third });
    expect(m3?.kind === "change" && m3.change).toBe(third);
    expect(m4?.kind === "change" && m4.change).toBe(fourth);
    expect(source.reads).toEqual([]);
  });

  it("takes the snapshot synchronously at the revision it reports, on the first next()", async () => {
    const { source, commit, watch } = setup();
    commit();
    const seen: number[] = [];
    const w = watch({
      snapshot: () => {
        seen.push(source.currentRevision);
        return [source.currentRevision];
      },
    });
    commit();
    expect(seen).toEqual([]);
    const snapshot = await nextMessage(w);
    expect(seen).toEqual([2]);
    expect(snapshot).toMatchObject({ kind: "snapshot", revision: 2, snapshot: [2] });
    commit();
    expect(await revisionsOf(w, 1)).toEqual([3]);
  });

  it("gives every watcher the same change message object", async () => {
    const { commit, watch } = setup();
    const [a, b] = [watch(), watch()];
    await nextMessage(a);
    await nextMessage(b);
    commit();
    expect(await nextMessage(a)).toBe(await nextMessage(b));
  });
});

describe("WatchHub resume", () => {
  it.each([
    { start: 1, reads: 3 },
    { start: 2, reads: 2 },
    { start: 5, reads: 1 },
    { start: 6, reads: 0 },
  ])("from $start sends exactly the changes after it, reading $reads batches of catchUpBatch", async ({ start, reads }) => {
    const { source, hub, commit, watch } = setup({ catchUpBatch: 2 });
    for (let i = 0; i < 6; i++) commit();
    const w = watch({ startRevision: start });
    const seen = await revisionsOf(w, 6 - start);
    const pending = w.next();
    expect(await settlesWithin(pending, 20)).toBe(false);
    expect(hub.watcherCount).toBe(1);
    expect(hub.unsyncedCount).toBe(0);
    commit();
    seen.push(changeRevision((await pending).value as Message));
    expect(seen).toEqual(range(start + 1, 7));
    expect(source.reads).toEqual(range(1, reads).map((i) => ({ revision: start + 2 * (i - 1), limit: 2 })));
  });

  it("from the current revision sends only later changes, without reading the source", async () => {
    const { source, commit, watch } = setup();
    commit();
    commit();
    const w = watch({ startRevision: 2 });
    const pending = w.next();
    expect(await settlesWithin(pending, 30)).toBe(false);
    const third = commit();
    expect((await pending).value).toEqual({ kind: "change", change: third });
    expect(source.reads).toEqual([]);
  });

  it("from a revision beyond the current one (history lost or replaced) answers a reset snapshot", async () => {
    const { commit, watch } = setup();
    commit();
    const w = watch({ startRevision: 4 });
    expect(await nextMessage(w)).toEqual({ kind: "snapshot", revision: 1, snapshot: range(1, 1), reset: true });
    commit();
    expect(await revisionsOf(w, 1)).toEqual([2]);
  });

  it.each([
    { start: 1, compactedThrough: 3, reset: true },
    { start: 2, compactedThrough: 3, reset: true },
    { start: 3, compactedThrough: 3, reset: false },
    { start: 5, compactedThrough: 3, reset: false },
  ])("from $start after compaction through $compactedThrough: reset=$reset", async ({ start, compactedThrough, reset }) => {
    const { source, commit, watch } = setup();
    for (let i = 0; i < 6; i++) commit();
    source.compact(compactedThrough);
    const w = watch({ startRevision: start });
    if (reset) {
      expect(await nextMessage(w)).toEqual({ kind: "snapshot", revision: 6, snapshot: range(1, 6), reset: true });
      commit();
      expect(await revisionsOf(w, 1)).toEqual([7]);
    } else {
      expect(await revisionsOf(w, 6 - start)).toEqual(range(start + 1, 6));
    }
  });

  it("answers a source that skips revisions with a reset snapshot, not a gap", async () => {
    const { source, commit, watch } = setup();
    for (let i = 0; i < 5; i++) commit();
    const readAfter = source.readAfter.bind(source);
    source.readAfter = (revision, limit) => readAfter(revision, limit).filter((change) => change.revision !== 3);
    const w = watch({ startRevision: 1 });
    expect(await nextMessage(w)).toMatchObject({ kind: "snapshot", revision: 5, reset: true });
  });
});

describe("WatchHub filter", () => {
  it("delivers a change only when one of its events matches, whole, in order", async () => {
    const { commit, watch } = setup({ catchUpBatch: 2 });
    const matches = (event: TestEvent) => event.service === "a";
    commit(ev("a"));
    commit(ev("b"));
    const mixed = commit(ev("b"), ev("a", "a2"));
    const live = watch({ matches });
    const resumed = watch({ matches, startRevision: 1 });
    await nextMessage(live);
    expect(await revisionsOf(resumed, 1)).toEqual([3]);
    commit(ev("b"));
    commit(ev("b"));
    commit(ev("a"));
    const [liveNext] = await nextMessages(live, 1);
    expect(changeRevision(liveNext!)).toBe(6);
    expect(await revisionsOf(resumed, 1)).toEqual([6]);
    const reread = watch({ matches, startRevision: 2 });
    const message = await nextMessage(reread);
    expect(message.kind === "change" && message.change.events).toEqual(mixed.events);
  });
});

describe("WatchHub slow consumers", () => {
  it("moves a watcher whose queue overflows to catch-up without stalling a fast one; both see every change once, in order", async () => {
    const { source, hub, commit, watch } = setup({ queueSize: 1, catchUpBatch: 7 });
    const fast = watch();
    const slow = watch();
    await nextMessage(fast);
    await nextMessage(slow);
    const fastSeen: number[] = [];
    for (let i = 0; i < 50; i++) {
      commit();
      fastSeen.push(...(await revisionsOf(fast, 1)));
    }
    expect(fastSeen).toEqual(range(1, 50));
    expect(hub.unsyncedCount).toBe(1);
    expect(source.reads).toEqual([]);
    const slowSeen = await revisionsOf(slow, 50);
    expect(slowSeen).toEqual(range(1, 50));
    expect(source.reads.length).toBeGreaterThan(1);
    expect(hub.unsyncedCount).toBe(0);
    commit();
    expect(await revisionsOf(slow, 1)).toEqual([51]);
    expect(await revisionsOf(fast, 1)).toEqual([51]);
  });

  it("keeps every change exactly once while a consumer reads slowly during steady writes", async () => {
    const { commit, watch } = setup({ queueSize: 2, catchUpBatch: 3 });
    const w = watch({ startRevision: 0 });
    await nextMessage(w);
    const seen: number[] = [];
    const reader = (async () => {
      while (seen.length < 200) {
        seen.push(changeRevision(await nextMessage(w)));
        if (seen.length % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let i = 0; i < 200; i++) {
      commit();
      if (i % 5 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await reader;
    expect(seen).toEqual(range(1, 200));
  });

  it("resets a watcher whose position is compacted while it catches up, after the batch it already read", async () => {
    const { source, hub, commit, watch } = setup({ queueSize: 1, catchUpBatch: 3 });
    const w = watch();
    await nextMessage(w);
    for (let i = 0; i < 10; i++) commit();
    expect(hub.unsyncedCount).toBe(1);
    expect(await revisionsOf(w, 2)).toEqual([1, 2]);
    source.compact(6);
    expect(await revisionsOf(w, 1)).toEqual([3]);
    expect(await nextMessage(w)).toEqual({ kind: "snapshot", revision: 10, snapshot: range(1, 10), reset: true });
    expect(hub.unsyncedCount).toBe(0);
    commit();
    expect(await revisionsOf(w, 1)).toEqual([11]);
  });

  it("catches up through a change the hub was never notified of", async () => {
    const { source, hub, commit, watch } = setup();
    const w = watch();
    await nextMessage(w);
    commit();
    source.append(ev("a"));
    commit();
    expect(await revisionsOf(w, 3)).toEqual([1, 2, 3]);
    expect(hub.unsyncedCount).toBe(0);
  });

  it("ignores a change notified twice", async () => {
    const { source, hub, commit, watch } = setup();
    const w = watch();
    await nextMessage(w);
    const first = commit();
    hub.notify(first);
    expect(hub.unsyncedCount).toBe(0);
    commit();
    expect(await revisionsOf(w, 2)).toEqual([1, 2]);
    expect(source.reads).toEqual([]);
  });

  it.each([1, 3])("queues at most queueSize=%i changes before falling back", async (queueSize) => {
    const { hub, commit, watch } = setup({ queueSize });
    const w = watch();
    await nextMessage(w);
    for (let i = 0; i < queueSize; i++) commit();
    expect(hub.unsyncedCount).toBe(0);
    commit();
    expect(hub.unsyncedCount).toBe(1);
    expect(await revisionsOf(w, queueSize + 1)).toEqual(range(1, queueSize + 1));
  });
});

describe("WatchHub progress", () => {
  it("sends idle synced watchers one shared progress message per tick at the current revision", async () => {
    const { commit, watch } = setup({ progressIntervalMs: 20 });
    commit();
    const a = watch({ startRevision: 1 });
    const b = watch({ startRevision: 1 });
    const [pa, pb] = await Promise.all([nextMessage(a, 500), nextMessage(b, 500)]);
    expect(pa).toEqual({ kind: "progress", revision: 1 });
    expect(pa).toBe(pb);
    commit();
    expect(await revisionsOf(a, 1)).toEqual([2]);
    expect(await nextMessage(a, 500)).toEqual({ kind: "progress", revision: 2 });
  });

  it("sends a watcher its snapshot, then progress once a tick passed without messages", async () => {
    const { watch } = setup({ progressIntervalMs: 20 });
    const w = watch();
    expect((await nextMessage(w)).kind).toBe("snapshot");
    expect(await nextMessage(w, 500)).toEqual({ kind: "progress", revision: 0 });
  });

  it("sends no progress to a watcher behind the current revision", async () => {
    const { commit, watch } = setup({ progressIntervalMs: 10, queueSize: 1 });
    const w = watch();
    await nextMessage(w);
    commit();
    commit();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await revisionsOf(w, 2)).toEqual([1, 2]);
  });

  describe("tick by tick", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("skips a tick after the watcher was sent something, and sends progress on the next", async () => {
      vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
      const { commit, watch } = setup({ progressIntervalMs: 20 });
      const w = watch();
      await nextMessage(w);
      const pending = w.next();
      vi.advanceTimersByTime(20);
      expect(await settlesWithin(pending, 20)).toBe(false);
      vi.advanceTimersByTime(20);
      expect((await pending).value).toEqual({ kind: "progress", revision: 0 });
      commit();
      expect(await revisionsOf(w, 1)).toEqual([1]);
      const afterChange = w.next();
      vi.advanceTimersByTime(20);
      expect(await settlesWithin(afterChange, 20)).toBe(false);
      vi.advanceTimersByTime(20);
      expect((await afterChange).value).toEqual({ kind: "progress", revision: 1 });
    });

    it("sends no progress to a watcher that was sent a change every tick", async () => {
      vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
      const { commit, watch } = setup({ progressIntervalMs: 20 });
      const w = watch();
      await nextMessage(w);
      const kinds: string[] = [];
      for (let i = 0; i < 10; i++) {
        commit();
        kinds.push((await nextMessage(w)).kind);
        vi.advanceTimersByTime(20);
      }
      expect(kinds).toEqual(Array.from({ length: 10 }, () => "change"));
      expect(await settlesWithin(w.next(), 20)).toBe(false);
    });

    it("never delivers a pending progress after a later change", async () => {
      vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
      const { commit, watch } = setup({ progressIntervalMs: 20 });
      const w = watch();
      await nextMessage(w);
      commit();
      expect(await revisionsOf(w, 1)).toEqual([1]);
      // The consumer holds change 1 and is not reading: the second tick leaves a progress pending.
      vi.advanceTimersByTime(40);
      commit();
      expect(await revisionsOf(w, 1)).toEqual([2]);
      expect(await settlesWithin(w.next(), 20)).toBe(false);
    });
  });

  it("sends no progress when disabled", async () => {
    const { watch } = setup({ progressIntervalMs: 0 });
    const w = watch();
    await nextMessage(w);
    expect(await settlesWithin(w.next(), 80)).toBe(false);
  });
});

describe("WatchHub cancellation", () => {
  it("ends an iteration waiting for a message when its signal aborts, and removes it", async () => {
    const { hub, watch } = setup();
    const w = watch();
    await nextMessage(w);
    expect(hub.watcherCount).toBe(1);
    const pending = w.next();
    w.controller.abort();
    w.controller.abort();
    expect((await pending).done).toBe(true);
    expect(hub.watcherCount).toBe(0);
    await expectEnd(w);
  });

  it("removes a watcher at once when its signal aborts while its consumer is not reading", async () => {
    const { hub, commit, watch } = setup();
    const w = watch();
    await nextMessage(w);
    w.controller.abort();
    expect(hub.watcherCount).toBe(0);
    commit();
    await expectEnd(w);
  });

  it("ends and removes a watcher on return(), idempotently", async () => {
    const { hub, commit, watch } = setup();
    const w = watch();
    await nextMessage(w);
    commit();
    expect((await w.return!()).done).toBe(true);
    expect((await w.return!()).done).toBe(true);
    expect(hub.watcherCount).toBe(0);
    await expectEnd(w);
  });

  it("registers nothing for an iteration never started or already aborted", async () => {
    const { hub, watch } = setup();
    watch();
    expect(hub.watcherCount).toBe(0);
    const w = watch();
    w.controller.abort();
    await expectEnd(w);
    expect(hub.watcherCount).toBe(0);
  });

  it("close() ends every iteration, waiting or not, and every later one", async () => {
    const { hub, commit, watch } = setup();
    const watches = [watch(), watch({ startRevision: 0 }), watch()];
    for (const w of watches) await nextMessage(w);
    const pending = watches.slice(0, 2).map((w) => w.next());
    // Queued for every watcher but not yet delivered: close() wins.
    commit();
    expect(hub.closed).toBe(false);
    hub.close();
    expect(hub.closed).toBe(true);
    expect(hub.watcherCount).toBe(0);
    for (const result of pending) expect((await within(result)).done).toBe(true);
    for (const w of watches) await expectEnd(w);
    await expectEnd(watch());
    expect(hub.watcherCount).toBe(0);
  });

  it("fails only the watcher whose filter throws", async () => {
    const { hub, commit, watch } = setup();
    const bad = watch({
      matches: (event) => {
        if (event.label === "boom") throw new Error("filter broke");
        return true;
      },
    });
    const good = watch();
    await nextMessage(bad);
    await nextMessage(good);
    expect(() => commit(ev("a", "boom"))).not.toThrow();
    await expect(within(bad.next())).rejects.toThrow("filter broke");
    expect(await revisionsOf(good, 1)).toEqual([1]);
    expect(hub.watcherCount).toBe(1);
  });
});

describe("WatchHub options", () => {
  it.each([
    { queueSize: 0 },
    { queueSize: 1.5 },
    { catchUpBatch: 0 },
    { progressIntervalMs: -1 },
    { progressIntervalMs: Number.POSITIVE_INFINITY },
  ])("rejects %j", (options) => {
    expect(() => new WatchHub(new FakeSource<TestEvent>(), options)).toThrow(RangeError);
  });

  it.each([-1, 1.5, Number.NaN])("rejects startRevision %d", (startRevision) => {
    const { watch } = setup();
    expect(() => watch({ startRevision })).toThrow(RangeError);
  });
});

describe("WatchHub fan-out", () => {
  it("delivers 100 changes to 1,000 watchers, each in order, as shared objects", async () => {
    const { hub, commit, watch } = setup();
    const watches = Array.from({ length: 1000 }, (_, i) =>
      watch(i % 2 === 0 ? {} : { matches: (event) => event.label !== "odd-skips" }),
    );
    await Promise.all(watches.map((w) => nextMessage(w)));
    const changes = Array.from({ length: 100 }, () => commit());
    expect(hub.unsyncedCount).toBe(0);
    const results = await Promise.all(watches.map((w) => nextMessages(w, 100)));
    for (const messages of results) {
      expect(messages.map(changeRevision)).toEqual(range(1, 100));
      expect(messages.every((message, i) => message.kind === "change" && message.change === changes[i])).toBe(true);
    }
    expect(results[0]?.[42]).toBe(results[999]?.[42]);
    expect(hub.watcherCount).toBe(1000);
  });
});
