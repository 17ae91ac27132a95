/**
 * A decode worker's thread (started by `DecodePool`, never imported): for
 * each task, the offload spec of its path decodes and prepares the bytes
 * (or the chunk of stream messages), and the result or the error goes back.
 */
import { parentPort } from "node:worker_threads";
import { decodeAndPrepare } from "../rpc/offloaded-decoding.js";
import { decodeAndPrepareChunk } from "../rpc/offloaded-streams.js";
import { offloadSpecAt } from "../rpc/offload-specs.js";
import { toWireError, workerReady, type DecodeReply, type DecodeTask, type WireChunkResult } from "./decode-wire.js";

const port = parentPort;
if (port === null) throw new Error("decode-worker runs as a worker thread");

/** What a task comes to; throws what a unary spec threw (a chunk's failures are part of its result). */
function run(task: DecodeTask): unknown {
  if ("bytes" in task) return decodeAndPrepare(offloadSpecAt(task.path, "unary"), task.bytes);
  const { messages, firstIndex, context } = task.chunk;
  const { prepared, failure } = decodeAndPrepareChunk(offloadSpecAt(task.path, "stream"), messages, firstIndex, context);
  return (failure === undefined ? { prepared } : { prepared, failure: toWireError(failure) }) satisfies WireChunkResult;
}

port.on("message", (task: DecodeTask) => {
  let reply: DecodeReply;
  try {
    reply = { id: task.id, ok: true, value: run(task) };
  } catch (thrown) {
    reply = { id: task.id, ok: false, error: toWireError(thrown) };
  }
  // A chunk's buffer goes back with it: prepared messages may hold views of
  // it (a capture's raw body), which a copy would duplicate in full.
  const buffer = "chunk" in task ? task.chunk.messages[0]?.buffer : undefined;
  try {
    port.postMessage(reply, buffer === undefined ? [] : [buffer as ArrayBuffer]);
  } catch (thrown) {
    // A prepared value that cannot be cloned is a bug of its spec.
    port.postMessage({ id: task.id, ok: false, error: toWireError(thrown) } satisfies DecodeReply);
  }
});
port.postMessage(workerReady);
