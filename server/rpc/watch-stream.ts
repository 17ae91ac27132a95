import { InvalidFieldError } from "../core/errors.js";
import type { RevisionedChange } from "../store/revision-log.js";
import type { SnapshotMessage, WatchHub } from "../watch/watch-hub.js";

/** How a watch RPC renders the hub's messages as its responses. */
export interface WatchRendering<E, S, M> {
  /** A snapshot's responses (several when a large one is split). */
  snapshot(message: SnapshotMessage<S>): Iterable<M>;
  /**
   * A change for the watcher's filter. Wrap it with `createChangeRenderer`
   * so that every watcher with the same filter shares one response object.
   */
  change(change: RevisionedChange<E>, filterKey: string, matches: (event: E) => boolean): M;
  progress(revision: bigint): M;
}

/** One watch RPC call, as {@link streamWatch} takes it. */
export interface WatchCall<E, S> {
  /** The request's `start_revision`, checked here. */
  readonly startRevision: bigint;
  /** The watcher's filter, and a key equal for equal filters. */
  readonly matches: (event: E) => boolean;
  readonly filterKey: string;
  /** The snapshot at the revision the hub fixes (see `WatchRequest.snapshot`). */
  readonly snapshot: () => S;
  readonly signal: AbortSignal;
}

/**
 * The response stream of a watch RPC over `hub`: checks `start_revision`
 * (0..2^53−1, since revisions are safe integers), then renders each hub
 * message. Shared by WatchTopology, WatchAnomalies and WatchMirrors (their
 * handlers return it, adding no generator layer per message), so
 * their contracts cannot drift apart.
 *
 * @throws InvalidFieldError naming `start_revision` when out of range
 */
export async function* streamWatch<E, S, M>(
  hub: WatchHub<E>,
  call: WatchCall<E, S>,
  rendering: WatchRendering<E, S, M>,
): AsyncGenerator<M> {
  const { startRevision, matches, filterKey } = call;
  if (startRevision < 0n || startRevision > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidFieldError("start_revision", `must be 0..${Number.MAX_SAFE_INTEGER}, got ${startRevision}`);
  }
  const watch = hub.watch({ startRevision: Number(startRevision), matches, snapshot: call.snapshot, signal: call.signal });
  for await (const message of watch) {
    switch (message.kind) {
      case "snapshot":
        yield* rendering.snapshot(message);
        break;
      case "change":
        yield rendering.change(message.change, filterKey, matches);
        break;
      case "progress":
        yield rendering.progress(BigInt(message.revision));
        break;
    }
  }
}
