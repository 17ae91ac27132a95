/**
 * A one-slot wake-up for stream handlers: `wait()` resolves on the next
 * `wake()` or when the signal aborts, whichever comes first, so a handler
 * blocked between messages always notices cancellation and shutdown.
 * Wakes that arrive while nobody waits are remembered (once).
 */
export class SignalWait {
  private pending = false;
  private resolve: (() => void) | undefined;

  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener("abort", () => this.wake(), { once: true });
  }

  /** Wakes the current or the next waiter. */
  wake(): void {
    const resolve = this.resolve;
    this.resolve = undefined;
    if (resolve === undefined) this.pending = true;
    else resolve();
  }

  /** Resolves on the next wake, at once if one is pending or the signal aborted. */
  wait(): Promise<void> {
    if (this.pending || this.signal.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }
}
