import type { RevisionedChange } from "../../../server/store/revision-log.js";
import type { ChangeSource, WatchMessage } from "../../../server/watch/watch-hub.js";

/** How long a stream read may take before the test fails instead of hanging. */
export const readTimeoutMs = 2000;

/**
 * Resolves with what `promise` settles to, or rejects after `timeoutMs`. The
 * timer is cleared either way, so no long-lived promise is left behind.
 */
export async function within<T>(promise: Promise<T>, timeoutMs = readTimeoutMs, what = "stream read"): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The next message of a watch; fails on timeout or when the watch ended instead. */
export async function nextMessage<E, S>(
  iterator: AsyncIterator<WatchMessage<E, S>>,
  timeoutMs = readTimeoutMs,
): Promise<WatchMessage<E, S>> {
  const result = await within(iterator.next(), timeoutMs);
  if (result.done === true) throw new Error("the watch ended where a message was expected");
  return result.value;
}

/** The next `count` messages of a watch, each read bounded by the timeout. */
export async function nextMessages<E, S>(
  iterator: AsyncIterator<WatchMessage<E, S>>,
  count: number,
  timeoutMs = readTimeoutMs,
): Promise<WatchMessage<E, S>[]> {
  const messages: WatchMessage<E, S>[] = [];
  for (let i = 0; i < count; i++) messages.push(await nextMessage(iterator, timeoutMs));
  return messages;
}

/** Fails unless the watch ends (its next read is `done`) within the timeout. */
export async function expectEnd<E, S>(iterator: AsyncIterator<WatchMessage<E, S>>, timeoutMs = readTimeoutMs): Promise<void> {
  const result = await within(iterator.next(), timeoutMs);
  if (result.done !== true) throw new Error(`expected the watch to end, got ${JSON.stringify(result.value)}`);
}

/**
 * Whether `promise` settles within `ms`. The caller keeps the promise: a
 * pending `next()` still receives the message that arrives later.
 */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const marker = Symbol("pending");
  try {
    const winner = await Promise.race([
      promise.then(() => true),
      new Promise<typeof marker>((resolve) => {
        timer = setTimeout(() => resolve(marker), ms);
      }),
    ]);
    return winner !== marker;
  } finally {
    clearTimeout(timer);
  }
}

/** The revision of a change message; fails on any other kind. */
export function changeRevision<E, S>(message: WatchMessage<E, S>): number {
  if (message.kind !== "change") throw new Error(`expected a change, got ${JSON.stringify(message)}`);
  return message.change.revision;
}

/** 1, 2, ..., n (or from..to inclusive). */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** A test event: which service it is about, and a label. */
export interface TestEvent {
  readonly service: string;
  readonly label: string;
}

/**
 * An in-memory, gap-free {@link ChangeSource} with compaction, recording the
 * limits its `readAfter` was called with.
 */
export class FakeSource<E> implements ChangeSource<E> {
  readonly changes: RevisionedChange<E>[] = [];
  readonly reads: { revision: number; limit: number }[] = [];
  compactedThrough = 0;

  get currentRevision(): number {
    return this.changes.length;
  }

  get oldestAvailableRevision(): number {
    return this.compactedThrough + 1;
  }

  /** Appends a change under the next revision and returns it (the object the hub is notified with). */
  append(...events: E[]): RevisionedChange<E> {
    const change = { revision: this.changes.length + 1, events };
    this.changes.push(change);
    return change;
  }

  /** Forgets the changes up to `revision`. */
  compact(revision: number): void {
    this.compactedThrough = Math.max(this.compactedThrough, revision);
  }

  readAfter(revision: number, limit: number): RevisionedChange<E>[] {
    this.reads.push({ revision, limit });
    if (revision + 1 < this.oldestAvailableRevision) throw new Error(`revision ${revision} is compacted`);
    return this.changes.slice(revision, revision + limit);
  }
}
