import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { runRevisionWatch } from "../../../client/cli/revision-watch.js";
import { within } from "../../fixtures/streams.js";

/** A fake stream message: the revision it brings the watch to. */
type Message = { revision: bigint };

/**
 * One connection attempt of a fake server: the messages it sends, then how
 * it ends ("fail" throws UNAVAILABLE, "end" ends the stream, "hang" waits
 * for the abort).
 */
interface Attempt {
  readonly messages: bigint[];
  readonly then: "fail" | "end" | "hang";
}

/** Runs a watch against scripted attempts; the watch is stopped when they run out. */
async function watchScript(attempts: Attempt[], startRevision = 0n) {
  const controller = new AbortController();
  const opened: bigint[] = [];
  const seen: bigint[] = [];
  const notices: string[] = [];
  const code = await within(
    runRevisionWatch<Message>({
      name: "watch",
      startRevision,
      signal: controller.signal,
      initialBackoffMs: 1,
      maxBackoffMs: 4,
      notify: (line) => notices.push(line),
      open: (revision, signal) => {
        opened.push(revision);
        const attempt = attempts.shift();
        return (async function* () {
          if (attempt === undefined) {
            controller.abort();
            throw new ConnectError("aborted", Code.Canceled);
          }
          for (const revision of attempt.messages) yield { revision };
          if (attempt.then === "fail") throw new ConnectError("server shutting down", Code.Unavailable);
          if (attempt.then === "hang") {
            // Stop the watch while this stream is open, as Ctrl-C would.
            setTimeout(() => controller.abort(), 1);
            await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
            throw new ConnectError("aborted", Code.Canceled);
          }
        })();
      },
      onMessage: (message) => {
        seen.push(message.revision);
        return message.revision;
      },
    }),
    5000,
    "watch",
  );
  return { code, opened, seen, notices };
}

describe("runRevisionWatch", () => {
  it("reopens from the last revision it handled after a dropped stream, with a notice", async () => {
    const { code, opened, seen, notices } = await watchScript(
      [
        { messages: [4n, 5n], then: "fail" },
        { messages: [6n], then: "hang" },
      ],
      3n,
    );
    expect(code).toBe(0);
    expect(opened).toEqual([3n, 5n]);
    expect(seen).toEqual([4n, 5n, 6n]);
    expect(notices).toEqual(["watch: [unavailable] server shutting down; resuming from revision 5 in 1 ms"]);
  });

  it("doubles the backoff while attempts fail, up to the maximum, and resets it once a message arrives", async () => {
    const { opened, notices } = await watchScript([
      { messages: [], then: "fail" },
      { messages: [], then: "fail" },
      { messages: [], then: "fail" },
      { messages: [], then: "fail" },
      { messages: [1n], then: "fail" },
      { messages: [], then: "hang" },
    ]);
    expect(opened).toEqual([0n, 0n, 0n, 0n, 0n, 1n]);
    expect(notices.map((line) => line.replace(/.*resuming/, "resuming"))).toEqual([
      "resuming from revision 0 in 1 ms",
      "resuming from revision 0 in 2 ms",
      "resuming from revision 0 in 4 ms",
      "resuming from revision 0 in 4 ms",
      "resuming from revision 1 in 1 ms",
    ]);
  });

  it("treats a stream that ends without an error as dropped", async () => {
    const { opened, notices } = await watchScript([
      { messages: [7n], then: "end" },
      { messages: [], then: "hang" },
    ]);
    expect(opened).toEqual([0n, 7n]);
    expect(notices).toEqual(["watch: stream ended; resuming from revision 7 in 1 ms"]);
  });

  it("ends quietly with exit code 0 when stopped mid-stream", async () => {
    const { code, notices } = await watchScript([{ messages: [1n, 2n], then: "hang" }]);
    expect(code).toBe(0);
    expect(notices).toEqual([]);
  });

  it("stops during a long backoff at once", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const run = runRevisionWatch<Message>({
      name: "watch",
      startRevision: 0n,
      signal: controller.signal,
      initialBackoffMs: 60_000,
      notify: () => controller.abort(),
      open: () =>
        (async function* (): AsyncGenerator<Message> {
          throw new ConnectError("down", Code.Unavailable);
        })(),
      onMessage: (message) => message.revision,
    });
    expect(await within(run, 2000, "stopped watch")).toBe(0);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
