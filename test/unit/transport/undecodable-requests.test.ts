import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createHandlerContext, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { RegistryService, ResolveRequestSchema } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { UndecodableRequestError } from "../../../server/rpc/offloaded-decoding.js";
import { abortableRequests } from "../../../server/transport/abortable-requests.js";
import {
  decodedRequest,
  tolerantDeserializer,
  undecodableRequestGate,
  undecodableRequestInterceptor,
} from "../../../server/transport/undecodable-requests.js";

const resolve = RegistryService.method.resolve;
const captureStream = MirrorService.method.captureStream;
const garbage = Buffer.from([0x0a, 0xff]);
/** What connect-node throws for a binary request that does not decode. */
const parseFailure = (): ConnectError => new ConnectError("parse binary: premature EOF", Code.Internal);

function contextOf(method: typeof resolve | typeof captureStream) {
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

describe("undecodableRequestGate and undecodableRequestInterceptor (HTTP port)", () => {
  it("turn connect-node's parse failure of a unary request into INVALID_ARGUMENT naming `request`, in place", () => {
    const context = contextOf(resolve);
    undecodableRequestGate(context);
    const error = parseFailure();
    context.abort(error);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe("request is not a valid latticeforge.registry.v1.ResolveRequest: premature EOF");
    expect(error.message).toBe("[invalid_argument] request is not a valid latticeforge.registry.v1.ResolveRequest: premature EOF");
  });

  it("leave every other reason a call ends alone", () => {
    for (const reason of [
      new ConnectError("internal error", Code.Internal),
      new ConnectError("parse binary: premature EOF", Code.Unknown),
      new Error("parse binary: premature EOF"),
      undefined,
    ]) {
      const context = contextOf(resolve);
      undecodableRequestGate(context);
      context.abort(reason);
      if (reason instanceof ConnectError) expect(reason.code).not.toBe(Code.InvalidArgument);
      expect(context.signal.reason).toBe(reason ?? context.signal.reason);
    }
  });

  it("never blame the request for a parse error raised after the call reached the interceptors", async () => {
    const context = contextOf(resolve);
    undecodableRequestGate(context);
    const request = { stream: false, method: resolve, contextValues: context.values } as unknown as UnaryRequest;
    await undecodableRequestInterceptor(async () => ({}) as never)(request);
    const error = parseFailure();
    context.abort(error);
    expect(error.code).toBe(Code.Internal);
  });

  it("fail a streamed message that does not parse with INVALID_ARGUMENT, after the messages before it", async () => {
    const context = contextOf(captureStream);
    let seen: AsyncIterable<unknown> | undefined;
    const request = {
      stream: true,
      method: captureStream,
      contextValues: context.values,
      message: messages("first", parseFailure()),
    } as unknown as StreamRequest;
    await undecodableRequestInterceptor(async (next) => {
      seen = (next as StreamRequest).message;
      return {} as never;
    })(request);
    const read: unknown[] = [];
    const failure = await (async () => {
      for await (const message of seen!) read.push(message);
    })().catch((error: unknown) => error);
    expect(read).toEqual(["first"]);
    expect(failure).toBeInstanceOf(ConnectError);
    expect((failure as ConnectError).code).toBe(Code.InvalidArgument);
    expect((failure as ConnectError).rawMessage).toBe("request is not a valid latticeforge.mirror.v1.CaptureStreamRequest: premature EOF");
  });
});
