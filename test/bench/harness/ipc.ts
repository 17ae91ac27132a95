import type { EventEmitter } from "node:events";

/** A message on a fork IPC channel: every message names its type. */
export interface IpcMessage {
  readonly type: string;
}

/**
 * What a child sends when it cannot do its job; the parent's pending
 * {@link nextMessage} rejects with its text instead of waiting for a timeout.
 */
export interface FailedMessage {
  readonly type: "failed";
  readonly message: string;
}

/**
 * Resolves with the next message of `type` from `source` (a forked child on
 * the parent's side, `process` on the child's side). Rejects after
 * `timeoutMs`, when a {@link FailedMessage} arrives, or when the process exits
 * first, so that no wait on another process can hang the bench.
 *
 * @param what names the wait in error messages, e.g. `host "adapter" start`
 */
export function nextMessage<M extends IpcMessage, T extends M["type"]>(
  source: EventEmitter,
  type: T,
  timeoutMs: number,
  what: string,
): Promise<Extract<M, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: IpcMessage): void => {
      if (message.type === type) finish(undefined, message as Extract<M, { type: T }>);
      else if (message.type === "failed") finish(new Error(`${what}: ${(message as FailedMessage).message}`));
    };
    const onExit = (code: number | null, signal: string | null): void => {
      finish(new Error(`${what}: process exited (${code ?? signal}) before answering`));
    };
    const timer = setTimeout(() => finish(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
    function finish(error: Error | undefined, message?: Extract<M, { type: T }>): void {
      clearTimeout(timer);
      source.off("message", onMessage);
      source.off("exit", onExit);
      if (error !== undefined) reject(error);
      else resolve(message as Extract<M, { type: T }>);
    }
    source.on("message", onMessage);
    source.once("exit", onExit);
  });
}

/** Child side: sends `message` to the parent; resolves once it was handed to the channel. */
export function sendToParent<M extends IpcMessage>(message: M): Promise<void> {
  const send = process.send?.bind(process);
  if (send === undefined) throw new Error("this module runs as a forked child of the bench (no IPC channel)");
  return new Promise((resolve, reject) => {
    send(message, undefined, {}, (error: Error | null) => (error === null ? resolve() : reject(error)));
  });
}

/**
 * Child side: runs `main`, reports a failure to the parent as a
 * {@link FailedMessage} and exits 1. The child also exits as soon as the
 * parent goes away (the IPC channel closes), so a crashed bench leaves no
 * orphans behind.
 */
export function runChild(main: () => Promise<void>): void {
  process.once("disconnect", () => process.exit(1));
  main().catch(async (error: unknown) => {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    await sendToParent({ type: "failed", message: text } satisfies FailedMessage).catch(() => undefined);
    process.exit(1);
  });
}
