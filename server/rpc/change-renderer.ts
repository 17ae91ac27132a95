import type { RevisionedChange } from "../store/revision-log.js";

/**
 * Renders a watch change for one watcher filter.
 *
 * @param change the committed change, shared by every watcher it reaches
 * @param filterKey identifies the filter: equal keys mean equal `matches`
 * @param matches the watcher's event filter
 */
export type ChangeRenderer<E, M> = (
  change: RevisionedChange<E>,
  filterKey: string,
  matches: (event: E) => boolean,
) => M;

/**
 * Wraps `render` so that it runs once per (change, filter key): every
 * watcher with the same filter gets the same message object, which the gRPC
 * port then encodes once for all of them (see client/grpc-definition.ts).
 * The cache is keyed weakly by the change object, so it lives only as long
 * as watchers still hold the change.
 */
export function createChangeRenderer<E, M>(
  render: (change: RevisionedChange<E>, matches: (event: E) => boolean) => M,
): ChangeRenderer<E, M> {
  const cache = new WeakMap<RevisionedChange<E>, Map<string, M>>();
  return (change, filterKey, matches) => {
    let byFilter = cache.get(change);
    if (byFilter === undefined) {
      byFilter = new Map();
      cache.set(change, byFilter);
    }
    let message = byFilter.get(filterKey);
    if (message === undefined) {
      message = render(change, matches);
      byFilter.set(filterKey, message);
    }
    return message;
  };
}
