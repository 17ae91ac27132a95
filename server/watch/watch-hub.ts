import { setImmediate as nextTurn } from "node:timers/promises";
import type { RevisionedChange } from "../store/revision-log.js";
import { Wakeup } from "./wakeup.js";

/**
 * Where a {@link WatchHub} catches watchers up from: a gap-free, durable
 * history of changes (the store's `RevisionLog` implements it).
 */
export interface ChangeSource<E> {
  /** The last committed revision; 0 before the first change. */
  readonly currentRevision: number;
  /** Changes after `oldestAvailableRevision - 1` can be read; older ones were compacted. */
  readonly oldestAvailableRevision: number;
  /** Committed changes after `revision`, ascending and gap-free, at most `limit` of them. */
  readAfter(revision: number, limit: number): RevisionedChange<E>[];
}

/** Sizes and periods of a {@link WatchHub}; tests shrink them to 1 (etcd `TestWatchVictims`). */
export interface WatchHubOptions {
  /** Changes queued per synced watcher before it falls back to catch-up. Default 1024. */
  queueSize?: number;
  /** Changes a catching-up watcher reads from the source at a time. Default 256. */
  catchUpBatch?: number;
  /** Milliseconds between progress ticks; 0 disables progress messages. Default 5000. */
  progressIntervalMs?: number;
}

/** The watcher's first message for `startRevision = 0`, or a reset after its position was compacted. */
export interface SnapshotMessage<S> {
  readonly kind: "snapshot";
  /** The revision the snapshot shows; changes after it follow. */
  readonly revision: number;
  /** What the request's `snapshot()` returned at that revision. */
  readonly snapshot: S;
  /** True when it replaces history the watcher asked for but that was compacted. */
  readonly reset: boolean;
}

/**
 * One change with at least one event matching the watcher's filter. `change`
 * holds every event of the change (consumers filter them). For synced
 * watchers it is the object given to `notify`, shared by all, so renderings
 * can be cached per change; a catching-up watcher gets the object its own
 * source read returned.
 */
export interface ChangeMessage<E> {
  readonly kind: "change";
  readonly change: RevisionedChange<E>;
}

/**
 * The watcher has seen everything up to `revision`: sent to an idle, synced
 * watcher so it can resume cheaply and tell a live stream from a dead one.
 * One object per tick, shared by every watcher that gets it.
 */
export interface ProgressMessage {
  readonly kind: "progress";
  readonly revision: number;
}

/** What a watch yields. */
export type WatchMessage<E, S> = SnapshotMessage<S> | ChangeMessage<E> | ProgressMessage;

/** One watch: where it starts, what it sees, and when it ends. */
export interface WatchRequest<E, S> {
  /**
   * 0: a snapshot first, then every matching change after it. N > 0 (the last
   * revision the client saw): exactly the matching changes after N, or a
   * reset snapshot when changes after N were compacted
   * (`N + 1 < oldestAvailableRevision`). N greater than the current revision
   * was never produced by this history (the server lost or replaced its
   * database), so it also gets a reset snapshot; unlike etcd, which waits,
   * because a resuming client's copy would otherwise silently miss changes.
   */
  startRevision: number;
  /** Filter: a change is delivered when at least one of its events matches. Must not throw. */
  matches(event: E): boolean;
  /**
   * Called synchronously by the hub at the instant it fixes the snapshot
   * revision (`currentRevision` at that instant), so the snapshot and the
   * changes after it are consistent.
   */
  snapshot(): S;
  /** Aborting it ends the iteration: it returns, it does not throw. */
  signal: AbortSignal;
}

type Mode = "snapshot" | "reset" | "unsynced" | "synced";

/** `pull` has nothing to deliver yet but more to read: continue after other work had a turn. */
const again = Symbol("again");

/**
 * Per-watcher state. Memory is bounded: at most `queueSize` queued and
 * `catchUpBatch` backlogged references, plus a few fields.
 */
class Watcher<E, S> {
  mode: Mode;
  /** The last revision accounted for: delivered, queued, backlogged or filtered out. */
  position: number;
  /** Synced: notified matching changes not yet delivered, oldest at `head`. */
  queue: ChangeMessage<E>[] = [];
  head = 0;
  /** Matching changes read from the source and not yet delivered; all precede `queue`. */
  backlog: RevisionedChange<E>[] = [];
  backlogHead = 0;
  /** A progress message waiting to be delivered; only set while there is nothing else to deliver. */
  progress: ProgressMessage | undefined;
  /** Whether the watcher was sent anything since the last progress tick. */
  sentSinceTick = false;
  ended = false;
  failure: { readonly error: unknown } | undefined;
  /** Wakes the watcher's consumer when there is something to deliver. */
  readonly wakeup = new Wakeup();

  constructor(readonly request: WatchRequest<E, S>) {
    this.mode = request.startRevision === 0 ? "snapshot" : "unsynced";
    this.position = request.startRevision;
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Wakes the consumer, now or on its next wait. */
  wake(): void {
    this.wakeup.wake();
  }
}

function anyMatch<E>(events: readonly E[], matches: (event: E) => boolean): boolean {
  for (const event of events) if (matches(event)) return true;
  return false;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/**
 * Fans committed changes out to many watchers, each with its own filter and
 * start revision; modelled on etcd's `storage/mvcc/watchable_store.go`.
 * Generic over the event type: one hub per revision log (topology,
 * mirror-config, trace anomalies).
 *
 * Invariants:
 * 1. Every watcher is *synced* (in the hub's synced set; `notify` pushes
 *    matching changes into its bounded queue) or *unsynced* (it reads the
 *    source in batches of `catchUpBatch` itself, when its consumer asks for
 *    the next message); a watcher owing a snapshot counts as unsynced.
 * 2. `notify` runs synchronously right after COMMIT, in commit order. It never
 *    blocks or awaits: per synced watcher it compares revisions, runs the
 *    filter and pushes one reference to a message object shared by all.
 * 3. A synced watcher whose queue would exceed `queueSize` (a slow consumer),
 *    or that sees a revision gap, becomes unsynced: its queue is dropped and
 *    its position becomes the revision before the oldest change it had not
 *    yet delivered. It re-reads the rest from the source, so it neither
 *    blocks the writer or other watchers nor loses a change (etcd's victims).
 * 4. An unsynced watcher becomes synced in the same synchronous step in which
 *    a read reached `source.currentRevision`. JavaScript runs `notify` and
 *    that step one at a time, so each later change reaches it by `notify`
 *    exactly once and no earlier one does (`notify` ignores revisions at or
 *    below the watcher's position).
 * 5. A watcher whose position falls behind `oldestAvailableRevision`, or whose
 *    source returns anything but the next revisions, gets a snapshot flagged
 *    `reset` at the current revision instead of a silent gap.
 * 6. Per watcher, snapshot and change revisions are strictly increasing and
 *    no matching change is skipped or repeated; a progress revision is never
 *    below what was delivered before it.
 * 7. One unref'd hub-wide timer ticks every `progressIntervalMs`. A synced
 *    watcher that is caught up, has nothing queued and was sent nothing since
 *    the previous tick gets that tick's shared progress message.
 * 8. A watcher is registered on its iteration's first `next()` (so an
 *    iteration never started holds nothing) and removed, idempotently, when
 *    its signal aborts, its iteration returns or throws, or the hub closes.
 */
export class WatchHub<E> {
  private readonly queueSize: number;
  private readonly catchUpBatch: number;
  private readonly progressIntervalMs: number;
  private readonly watchers = new Set<Watcher<E, unknown>>();
  private readonly synced = new Set<Watcher<E, unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private isClosed = false;

  /**
   * @param source the durable history watchers catch up from
   * @throws RangeError when an option is out of range
   */
  constructor(
    private readonly source: ChangeSource<E>,
    options: WatchHubOptions = {},
  ) {
    this.queueSize = positiveInteger("queueSize", options.queueSize ?? 1024);
    this.catchUpBatch = positiveInteger("catchUpBatch", options.catchUpBatch ?? 256);
    const progressIntervalMs = options.progressIntervalMs ?? 5000;
    if (!Number.isFinite(progressIntervalMs) || progressIntervalMs < 0) {
      throw new RangeError(`progressIntervalMs must be a non-negative number, got ${progressIntervalMs}`);
    }
    this.progressIntervalMs = progressIntervalMs;
  }

  /** Watchers currently registered. */
  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Registered watchers that are catching up or owe a snapshot. */
  get unsyncedCount(): number {
    return this.watchers.size - this.synced.size;
  }

  /**
   * Hands a committed change to every synced watcher (invariants 2–4). Call it
   * from the write's `onCommitted`, so changes arrive in commit order.
   */
  notify(change: RevisionedChange<E>): void {
    if (this.synced.size === 0) return;
    const message: ChangeMessage<E> = { kind: "change", change };
    const { revision } = change;
    for (const watcher of this.synced) {
      if (revision <= watcher.position) continue;
      if (revision !== watcher.position + 1) {
        this.unsync(watcher);
        continue;
      }
      let matched: boolean;
      try {
        matched = anyMatch(change.events, watcher.request.matches);
      } catch (error) {
        this.fail(watcher, error);
        continue;
      }
      if (!matched) {
        watcher.position = revision;
        continue;
      }
      if (watcher.queued >= this.queueSize) {
        this.unsync(watcher);
        continue;
      }
      watcher.position = revision;
      watcher.queue.push(message);
      watcher.progress = undefined;
      watcher.wake();
    }
  }

  /**
   * Starts a watch. Registration and, for `startRevision = 0`, the snapshot
   * happen on the iteration's first `next()`. The iteration ends (returns)
   * when the signal aborts, the consumer returns, or {@link close} runs; it
   * throws what `snapshot()`, `matches()` or the source threw. Consume it
   * outside committer ops (stream handlers do), so the source only shows
   * committed changes.
   *
   * @throws RangeError when `startRevision` is not a non-negative integer
   */
  watch<S>(request: WatchRequest<E, S>): AsyncIterable<WatchMessage<E, S>> {
    const { startRevision } = request;
    if (!Number.isSafeInteger(startRevision) || startRevision < 0) {
      throw new RangeError(`startRevision must be a non-negative integer, got ${startRevision}`);
    }
    return this.iterate(request);
  }

  /**
   * Whether {@link close} ran. A handler whose iteration ended checks it to
   * tell shutdown (answer UNAVAILABLE) from its own cancellation.
   */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Ends every watch iteration and stops the progress timer; later watches end at once. */
  close(): void {
    this.isClosed = true;
    for (const watcher of this.watchers) this.end(watcher);
    this.stopTimer();
  }

  private async *iterate<S>(request: WatchRequest<E, S>): AsyncGenerator<WatchMessage<E, S>, void, undefined> {
    if (this.isClosed || request.signal.aborted) return;
    const watcher = new Watcher(request);
    this.watchers.add(watcher);
    if (this.watchers.size === 1) this.startTimer();
    const onAbort = (): void => this.end(watcher);
    request.signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        if (watcher.failure !== undefined) throw watcher.failure.error;
        if (watcher.ended) return;
        // pull() looks at the whole state, so wakes from before it are spent.
        watcher.wakeup.clear();
        const next = this.pull(watcher);
        if (next === undefined) await watcher.wakeup.wait();
        else if (next === again) await nextTurn();
        else yield next;
      }
    } finally {
      request.signal.removeEventListener("abort", onAbort);
      this.end(watcher);
    }
  }

  /**
   * The watcher's next message, `undefined` when it must wait for a wake, or
   * `again` when it read a batch with nothing to deliver and is still behind.
   *
   * Steps:
   * 1. Deliver backlogged changes first: they precede anything queued.
   * 2. Owing a (reset) snapshot: fix the revision, take the snapshot, sync.
   * 3. Unsynced: read one batch (invariants 4–5); loop to 1, or return
   *    `again` when still behind with nothing to deliver.
   * 4. Synced: deliver the oldest queued change, else a pending progress.
   */
  private pull<S>(watcher: Watcher<E, S>): WatchMessage<E, S> | typeof again | undefined {
    for (;;) {
      if (watcher.backlogHead < watcher.backlog.length) {
        const change = watcher.backlog[watcher.backlogHead++]!;
        if (watcher.backlogHead === watcher.backlog.length) {
          watcher.backlog = [];
          watcher.backlogHead = 0;
        }
        watcher.sentSinceTick = true;
        return { kind: "change", change };
      }
      switch (watcher.mode) {
        case "snapshot":
        case "reset": {
          const reset = watcher.mode === "reset";
          const revision = this.source.currentRevision;
          const snapshot = watcher.request.snapshot();
          watcher.position = revision;
          this.sync(watcher);
          watcher.sentSinceTick = true;
          return { kind: "snapshot", revision, snapshot, reset };
        }
        case "unsynced":
          this.catchUp(watcher);
          if (watcher.mode === "unsynced" && watcher.backlog.length === 0) return again;
          continue;
        case "synced": {
          if (watcher.head < watcher.queue.length) {
            const message = watcher.queue[watcher.head++]!;
            if (watcher.head === watcher.queue.length) {
              watcher.queue = [];
              watcher.head = 0;
            }
            watcher.sentSinceTick = true;
            return message;
          }
          const progress = watcher.progress;
          if (progress === undefined) return undefined;
          watcher.progress = undefined;
          watcher.sentSinceTick = true;
          return progress;
        }
      }
    }
  }

  /** Reads one batch after the watcher's position; syncs it when the batch reaches the current revision. */
  private catchUp<S>(watcher: Watcher<E, S>): void {
    const current = this.source.currentRevision;
    // A position beyond the current revision was never produced by this
    // history (the server lost or replaced its database): the client's copy
    // cannot be trusted, so it gets a reset snapshot rather than waiting.
    if (watcher.position > current) {
      watcher.mode = "reset";
      return;
    }
    if (watcher.position === current) {
      this.sync(watcher);
      return;
    }
    if (watcher.position + 1 < this.source.oldestAvailableRevision) {
      watcher.mode = "reset";
      return;
    }
    const changes = this.source.readAfter(watcher.position, this.catchUpBatch);
    let expected = watcher.position + 1;
    for (const change of changes) {
      if (change.revision !== expected) break;
      expected++;
    }
    if (changes.length === 0 || expected !== changes.at(-1)!.revision + 1) {
      // The source lost history between the check above and the read, or is
      // not gap-free: answer with a reset snapshot rather than a gap.
      watcher.mode = "reset";
      return;
    }
    const { matches } = watcher.request;
    for (const change of changes) if (anyMatch(change.events, matches)) watcher.backlog.push(change);
    watcher.position = expected - 1;
    if (watcher.position >= current) this.sync(watcher);
  }

  private sync<S>(watcher: Watcher<E, S>): void {
    watcher.mode = "synced";
    this.synced.add(watcher);
  }

  /** Invariant 3: drop the queue and resume before the oldest undelivered change. */
  private unsync<S>(watcher: Watcher<E, S>): void {
    if (watcher.head < watcher.queue.length) watcher.position = watcher.queue[watcher.head]!.change.revision - 1;
    watcher.queue = [];
    watcher.head = 0;
    watcher.progress = undefined;
    watcher.mode = "unsynced";
    this.synced.delete(watcher);
    watcher.wake();
  }

  private fail<S>(watcher: Watcher<E, S>, error: unknown): void {
    watcher.failure ??= { error };
    this.end(watcher);
  }

  private end<S>(watcher: Watcher<E, S>): void {
    watcher.ended = true;
    watcher.queue = [];
    watcher.head = 0;
    watcher.backlog = [];
    watcher.backlogHead = 0;
    watcher.progress = undefined;
    this.synced.delete(watcher);
    if (this.watchers.delete(watcher) && this.watchers.size === 0) this.stopTimer();
    watcher.wake();
  }

  private startTimer(): void {
    if (this.progressIntervalMs === 0 || this.timer !== undefined) return;
    this.timer = setInterval(this.tick, this.progressIntervalMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Invariant 7. */
  private readonly tick = (): void => {
    const revision = this.source.currentRevision;
    let message: ProgressMessage | undefined;
    for (const watcher of this.watchers) {
      if (
        !watcher.sentSinceTick &&
        watcher.mode === "synced" &&
        watcher.position === revision &&
        watcher.queued === 0 &&
        watcher.backlog.length === 0
      ) {
        message ??= { kind: "progress", revision };
        watcher.progress = message;
        watcher.wake();
      }
      watcher.sentSinceTick = false;
    }
  };
}
