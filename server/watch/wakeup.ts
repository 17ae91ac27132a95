/**
 * A one-slot wake-up for stream loops: `wait()` resolves on the next
 * `wake()` — at once if a wake arrived while nobody waited (remembered once)
 * — and, when a signal is given, when it aborts, so a handler blocked
 * between messages always notices cancellation and shutdown.
 *
 * It replaces `Promise.race` against long-lived promises, which leaks one
 * reaction per race for as long as the promise stays pending.
 */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | undefined;

  constructor(private readonly signal?: AbortSignal) {
    signal?.addEventListener("abort", () => this.wake(), { once: true });
  }

  /** Wakes the current or the next waiter. */
  wake(): void {
    const resolve = this.resolve;
    this.resolve = undefined;
    if (resolve === undefined) this.pending = true;
    else resolve();
  }

  /** Forgets a remembered wake (the caller is about to look at all state anyway). */
  clear(): void {
    this.pending = false;
  }

  /** Resolves on the next wake, at once if one is pending or the signal aborted. */
  wait(): Promise<void> {
    if (this.pending || this.signal?.aborted === true) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }
}
