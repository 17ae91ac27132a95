import { Code, ConnectError } from "@connectrpc/connect";
import { UndecodableRequestError } from "../rpc/offloaded-decoding.js";

/**
 * A call's request stream that stops waiting when the call ends: a read
 * waiting for the next request rejects with UNAVAILABLE (`shutdownMessage`)
 * when `shutdownSignal` aborts, or with `callSignal`'s reason when that
 * aborts (cancel, deadline; CANCELLED when the reason is not a
 * ConnectError). A handler blocked between requests (an idle
 * CaptureStream, a reflection stream) thus ends at once instead of holding
 * a shutdown until `--shutdown-timeout` forces it. Reads that data answers
 * first are unaffected, and no promise is raced per message.
 *
 * A message whose bytes did not decode (the gRPC port's placeholder, see
 * `undecodable-requests.ts`) ends the stream: its read fails with that
 * `UndecodableRequestError`.
 */
export function abortableRequests<T>(
  source: AsyncIterable<T>,
  callSignal: AbortSignal,
  shutdownSignal: AbortSignal,
  shutdownMessage: string,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const inner = source[Symbol.asyncIterator]();
      let waiting: { readonly reject: (reason: unknown) => void } | undefined;
      // Shutdown first: on the HTTP port the call's signal aborts with it, with a plain AbortError.
      const reason = (): ConnectError => {
        if (shutdownSignal.aborted) return new ConnectError(shutdownMessage, Code.Unavailable);
        const cause: unknown = callSignal.reason;
        return cause instanceof ConnectError ? cause : new ConnectError("call cancelled", Code.Canceled, undefined, undefined, cause);
      };
      const onAbort = (): void => {
        const read = waiting;
        waiting = undefined;
        read?.reject(reason());
      };
      callSignal.addEventListener("abort", onAbort, { once: true });
      shutdownSignal.addEventListener("abort", onAbort, { once: true });
      const release = (): void => {
        callSignal.removeEventListener("abort", onAbort);
        shutdownSignal.removeEventListener("abort", onAbort);
      };
      return {
        next() {
          if (callSignal.aborted || shutdownSignal.aborted) {
            release();
            return Promise.reject(reason());
          }
          return new Promise<IteratorResult<T>>((resolve, reject) => {
            const read = { reject };
            waiting = read;
            inner.next().then(
              (result) => {
                if (waiting === read) waiting = undefined;
                if (result.done !== true && result.value instanceof UndecodableRequestError) {
                  release();
                  void inner.return?.()?.catch(() => undefined);
                  reject(result.value);
                  return;
                }
                if (result.done === true) release();
                resolve(result);
              },
              (error: unknown) => {
                if (waiting === read) waiting = undefined;
                release();
                reject(error);
              },
            );
          });
        },
        return(value?: unknown) {
          release();
          return inner.return?.(value) ?? Promise.resolve({ done: true, value: value as T });
        },
      };
    },
  };
}
