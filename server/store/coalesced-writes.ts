import type { GroupCommitter } from "./group-commit.js";

/**
 * Many small writes of one kind, written by one committer op: the items
 * added before the committer's next batch runs (at most `maxPerWrite` per
 * op) share it, so per-op costs (its savepoint, rows every item would
 * update, such as counters) are paid once for all of them. Each `add` is
 * answered with its own result.
 *
 * Invariants:
 * - Items are written in the order they were added; an item never joins an
 *   op that has already run.
 * - An op weighs `maxPerWrite` in the committer's batch limit (what it may
 *   hold), so that limit still bounds the items of one transaction.
 * - Any failure of an op (its statements, or a rejection before it ran,
 *   e.g. the committer closed) fails every item in it; later items go to a
 *   new op.
 */
export class CoalescedWrites<Item, Result> {
  /** Items waiting for their shared op to run. */
  private open: { readonly items: Item[]; readonly written: Promise<Result[]> } | undefined;

  /**
   * @param writeAll runs inside the op: writes `items` in order and returns
   *   one result per item (throwing rolls the op back to its savepoint)
   */
  constructor(
    private readonly committer: GroupCommitter,
    private readonly writeAll: (items: readonly Item[]) => Result[],
    private readonly maxPerWrite: number,
  ) {}

  /** Queues `item`; resolves with its result once its op committed. */
  add(item: Item): Promise<Result> {
    let batch = this.open;
    if (batch === undefined || batch.items.length >= this.maxPerWrite) {
      const items: Item[] = [];
      const close = (): void => {
        if (this.open?.items === items) this.open = undefined;
      };
      const written = this.committer.write(
        () => {
          close();
          return this.writeAll(items);
        },
        undefined,
        this.maxPerWrite,
      );
      // An op rejected before it ran takes no more items.
      written.catch(close);
      batch = { items, written };
      this.open = batch;
    }
    const index = batch.items.push(item) - 1;
    return batch.written.then((results) => results[index]!);
  }
}
