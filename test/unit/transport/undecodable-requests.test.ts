import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createHandlerContext, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { RegistryService, ResolveRequestSchema } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { UndecodableRequestError } from "../../../server/rpc/offloaded-decoding.js";
import { abortableRequests } from "../../../server/transport/abortable-requests.js";
import { decodedRequest, tolerantDeserializer, undecodableRequestHandling } from "../../../server/transport/undecodable-requests.js";

const resolve = RegistryService.method.resolve;
const captureStream = MirrorService.method.captureStream;
const watchMirrors = MirrorService.method.watchMirrors;
const garbage = Buffer.from([0x0a, 0xff]);
/** What connect-node throws for a binary request that does not decode. */
const parseFailure = (): ConnectError => new ConnectError("parse binary: premature EOF", Code.Internal);

function contextOf(method: typeof resolve | typeof captureStream | typeof watchMirrors) {
  return createHandlerContext({
    service: method.parent,
    method,
    protocolName: "connect",
    requestMethod: "POST",
    url: `http://localhost/${method.parent.typeName}/${method.name}`,
    contextValues: createContextValues(),
  });
}

async function* messages<T>(...items: (T | Error)[]): AsyncGenerator<T> {
  for (const item of items) {
    if (item instanceof Error) throw item;
    yield item;
  }
}

describe("tolerantDeserializer and decodedRequest (gRPC port)", () => {
  it("hand the handler its message, or the error in its place, thrown where the handler looks", () => {
    const deserialize = tolerantDeserializer(resolve.input);
    const bytes = Buffer.from(toBinary(ResolveRequestSchema, create(ResolveRequestSchema, { serviceName: "checkout" })));
    expect(decodedRequest(deserialize(bytes))).toMatchObject({ serviceName: "checkout" });
    const placeholder = deserialize(garbage);
    expect(placeholder).toBeInstanceOf(UndecodableRequestError);
    expect(() => decodedRequest(placeholder)).toThrow("request is not a valid latticeforge.registry.v1.ResolveRequest: premature EOF");
  });

  it("end a request stream at a placeholder, closing the source", async () => {
    let closed = false;
    const source = {
      [Symbol.asyncIterator]() {
        const inner = (async function* () {
          yield "first";
          yield new UndecodableRequestError("x.Request", "premature EOF");
          yield "never read";
        })();
        return {
          next: () => inner.next(),
          return: async () => {
            closed = true;
            return inner.return(undefined);
          },
        };
      },
    } as AsyncIterable<unknown>;
    const read: unknown[] = [];
    const stream = abortableRequests(source, new AbortController().signal, new AbortController().signal, "shutting down");
    const failure = await (async () => {
      for await (const message of stream) read.push(message);
    })().catch((error: unknown) => error);
    expect(read).toEqual(["first"]);
    expect(failure).toBeInstanceOf(UndecodableRequestError);
    expect(closed).toBe(true);
  });
});

describe("undecodableRequestHandling (HTTP port)", () => {
  /** The handling, with what it records as [method name, code] pairs. */
  function handling() {
    const recorded: [string, Code][] = [];
    return { recorded, ...undecodableRequestHandling((method, _ctx, error) => recorded.push([method.name, error.code])) };
  }

  /** Runs `interceptor` on a stream request of `method` whose messages are `items`; returns what the next step got. */
  async function intercepted(
    { interceptor }: ReturnType<typeof handling>,
    method: typeof captureStream | typeof watchMirrors,
    context: ReturnType<typeof contextOf>,
    items: (string | Error)[],
  ): Promise<AsyncIterable<unknown>> {
    let seen: AsyncIterable<unknown> | undefined;
    const request = { stream: true, method, contextValues: context.values, message: messages(...items) } as unknown as StreamRequest;
    await interceptor(async (next) => {
      seen = (next as StreamRequest).message;
      return {} as never;
    })(request);
    return seen!;
  }

  /** Reads `stream` to its end or failure: what it yielded and how it failed. */
  async function readAll(stream: AsyncIterable<unknown>): Promise<{ read: unknown[]; failure: unknown }> {
    const read: unknown[] = [];
    const failure = await (async () => {
      for await (const message of stream) read.push(message);
    })().catch((error: unknown) => error);
    return { read, failure };
  }

  it("turn connect-node's parse failure of a unary request into INVALID_ARGUMENT naming `request`, in place, and record it", () => {
    const { recorded, requestGate } = handling();
    const context = contextOf(resolve);
    requestGate(context);
    const error = parseFailure();
    context.abort(error);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe("request is not a valid latticeforge.registry.v1.ResolveRequest: premature EOF");
    expect(error.message).toBe("[invalid_argument] request is not a valid latticeforge.registry.v1.ResolveRequest: premature EOF");
    expect(recorded).toEqual([["Resolve", Code.InvalidArgument]]);
  });

  it("leave every other reason a call ends as it is, recording those connect-node raised before the handler", () => {
    const { recorded, requestGate } = handling();
    for (const reason of [
      new ConnectError("internal error", Code.Internal),
      new ConnectError("parse binary: premature EOF", Code.Unknown),
      new ConnectError("cannot decode message latticeforge.registry.v1.ResolveRequest from JSON", Code.InvalidArgument),
      new Error("parse binary: premature EOF"),
      undefined,
    ]) {
      const context = contextOf(resolve);
      requestGate(context);
      context.abort(reason);
      const code = reason instanceof ConnectError ? reason.code : undefined;
      if (reason instanceof ConnectError) expect(reason.rawMessage).not.toMatch(/^request is not a valid/);
      expect(context.signal.reason).toBe(reason ?? context.signal.reason);
      if (code !== undefined) expect(recorded.at(-1)).toEqual(["Resolve", code]);
    }
    expect(recorded).toEqual([
      ["Resolve", Code.Internal],
      ["Resolve", Code.Unknown],
      ["Resolve", Code.InvalidArgument],
    ]);
  });

  it("record the call's duration from the gate on", async () => {
    const started: bigint[] = [];
    const { requestGate } = undecodableRequestHandling((_method, _ctx, _error, startedAt) => started.push(startedAt));
    const context = contextOf(resolve);
    const before = process.hrtime.bigint();
    requestGate(context);
    await new Promise((resolve) => setTimeout(resolve, 5));
    context.abort(parseFailure());
    expect(started).toHaveLength(1);
    expect(started[0]! >= before && started[0]! < process.hrtime.bigint() - 4_000_000n).toBe(true);
  });

  it("keep a recorder that throws from escaping into connect-node", () => {
    const { requestGate } = undecodableRequestHandling(() => {
      throw new Error("recorder bug");
    });
    const context = contextOf(resolve);
    requestGate(context);
    const error = parseFailure();
    expect(() => context.abort(error)).not.toThrow();
    expect(error.code).toBe(Code.InvalidArgument);
  });

  it("never blame the request for a parse error raised after the call reached the interceptors", async () => {
    const { recorded, requestGate, interceptor } = handling();
    const context = contextOf(resolve);
    requestGate(context);
    const request = { stream: false, method: resolve, contextValues: context.values } as unknown as UnaryRequest;
    await interceptor(async () => ({}) as never)(request);
    const error = parseFailure();
    context.abort(error);
    expect(error.code).toBe(Code.Internal);
    expect(recorded).toEqual([]);
  });

  it("fail a streamed message that does not parse with INVALID_ARGUMENT, after the messages before it, leaving the record to the handler", async () => {
    const handled = handling();
    const context = contextOf(captureStream);
    handled.requestGate(context);
    const { read, failure } = await readAll(await intercepted(handled, captureStream, context, ["first", parseFailure()]));
    expect(read).toEqual(["first"]);
    expect(failure).toBeInstanceOf(ConnectError);
    expect((failure as ConnectError).code).toBe(Code.InvalidArgument);
    expect((failure as ConnectError).rawMessage).toBe("request is not a valid latticeforge.mirror.v1.CaptureStreamRequest: premature EOF");
    context.abort(failure);
    expect(handled.recorded).toEqual([]);
  });

  it("record a server-streaming call whose one request cannot be read, once: connect-node reads it before the handler", async () => {
    for (const [reason, code] of [
      [parseFailure(), Code.InvalidArgument],
      [new ConnectError("message too large", Code.ResourceExhausted), Code.ResourceExhausted],
    ] as const) {
      const handled = handling();
      const context = contextOf(watchMirrors);
      handled.requestGate(context);
      const { failure } = await readAll(await intercepted(handled, watchMirrors, context, [reason]));
      expect((failure as ConnectError).code).toBe(code);
      context.abort(failure);
      expect(handled.recorded).toEqual([["WatchMirrors", code]]);
    }
  });
});
