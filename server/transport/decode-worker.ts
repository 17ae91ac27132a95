/**
 * A decode worker's thread (started by `DecodePool`, never imported): for
 * each task, the offload spec of its path decodes and prepares the bytes,
 * and the result or the error goes back.
 */
import { parentPort } from "node:worker_threads";
import { decodeAndPrepare } from "../rpc/offloaded-decoding.js";
import { offloadSpecs } from "../rpc/offload-specs.js";
import { toWireError, workerReady, type DecodeReply, type DecodeTask } from "./decode-wire.js";

const port = parentPort;
if (port === null) throw new Error("decode-worker runs as a worker thread");

port.on("message", (task: DecodeTask) => {
  let reply: DecodeReply;
  try {
    const spec = offloadSpecs.get(task.path);
    if (spec === undefined) throw new Error(`no offload spec for ${task.path}`);
    reply = { id: task.id, ok: true, value: decodeAndPrepare(spec, task.bytes) };
  } catch (thrown) {
    reply = { id: task.id, ok: false, error: toWireError(thrown) };
  }
  try {
    port.postMessage(reply);
  } catch (thrown) {
    // A prepared value that cannot be cloned is a bug of its spec.
    port.postMessage({ id: task.id, ok: false, error: toWireError(thrown) } satisfies DecodeReply);
  }
});
port.postMessage(workerReady);
