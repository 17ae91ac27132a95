import { create, type DescMessage, type DescMethod, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type CallOptions, type Client } from "@connectrpc/connect";
import {
  Client as GrpcJsClient,
  Metadata,
  credentials,
  type CallOptions as GrpcCallOptions,
  type ClientOptions,
  type MethodDefinition,
  type ServiceError,
  type StatusObject,
} from "@grpc/grpc-js";
import type { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { grpcServiceDefinition } from "./grpc-definition.js";
import { headersToMetadata, metadataToHeaders } from "./grpc-metadata.js";

/** Where and how to reach a control plane's gRPC port. */
export interface GrpcConnectionOptions {
  /** `host:port` of the gRPC port. */
  readonly address: string;
  /** PEM files for TLS; omit for plaintext h2c. */
  readonly tls?: {
    /** CA bundle that the server certificate must chain to (system roots when omitted). */
    readonly ca?: string;
    /** Client certificate and key, for mTLS. */
    readonly cert?: string;
    readonly key?: string;
  };
  /** Extra grpc-js channel options. */
  readonly channelOptions?: ClientOptions;
}

/**
 * One HTTP/2 connection to a control plane's gRPC port, from which typed
 * clients for any of its services are made. grpc-js is the cheaper client
 * (2–3× less CPU per call than connect-node here).
 *
 * @example
 * const conn = new GrpcConnection({ address: "127.0.0.1:50051" });
 * const health = conn.client(Health);
 * const { status } = await health.check({ service: "" }, { timeoutMs: 1000 });
 * conn.close();
 */
export class GrpcConnection {
  private readonly channel: GrpcJsClient;

  constructor(options: GrpcConnectionOptions) {
    const creds =
      options.tls === undefined
        ? credentials.createInsecure()
        : credentials.createSsl(
            options.tls.ca === undefined ? null : readFileSync(options.tls.ca),
            options.tls.key === undefined ? null : readFileSync(options.tls.key),
            options.tls.cert === undefined ? null : readFileSync(options.tls.cert),
          );
    this.channel = new GrpcJsClient(options.address, creds, options.channelOptions ?? {});
  }

  /**
   * A client for `service` with the same shape as a connect-es `Client`, so
   * code and tests can use either transport: unary calls return promises,
   * streams are async iterables, failures are `ConnectError`s with the gRPC
   * status code.
   */
  client<S extends DescService>(service: S): Client<S> {
    const definition = grpcServiceDefinition(service);
    const client: Record<string, unknown> = {};
    for (const method of service.methods) {
      const wire = definition[method.localName] as MethodDefinition<unknown, unknown>;
      client[method.localName] = this.callFunction(method, wire);
    }
    return client as Client<S>;
  }

  /** Resolves when the connection is ready, or rejects after `timeoutMs`. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.channel.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Closes the connection; calls in flight are cancelled. */
  close(): void {
    this.channel.close();
  }

  private callFunction(method: DescMethod, wire: MethodDefinition<unknown, unknown>): unknown {
    const { channel } = this;
    const input = method.input;
    const path = wire.path;
    const serialize = wire.requestSerialize;
    const deserialize = wire.responseDeserialize;
    switch (method.methodKind) {
      case "unary":
        return (request: MessageInitShape<DescMessage>, options: CallOptions = {}) =>
          new Promise((resolve, reject) => {
            const call = channel.makeUnaryRequest(
              path,
              serialize,
              deserialize,
              create(input, request),
              toMetadata(options),
              toGrpcOptions(options),
              (error: ServiceError | null, response?: unknown) => (error ? reject(toConnectError(error)) : resolve(response)),
            );
            observe(call, options);
          });
      case "server_streaming":
        return (request: MessageInitShape<DescMessage>, options: CallOptions = {}) =>
          readResponses(() =>
            channel.makeServerStreamRequest(path, serialize, deserialize, create(input, request), toMetadata(options), toGrpcOptions(options)),
          options);
      case "client_streaming":
        return (requests: AsyncIterable<MessageInitShape<DescMessage>>, options: CallOptions = {}) =>
          new Promise((resolve, reject) => {
            const call = channel.makeClientStreamRequest(
              path,
              serialize,
              deserialize,
              toMetadata(options),
              toGrpcOptions(options),
              (error: ServiceError | null, response?: unknown) => (error ? reject(toConnectError(error)) : resolve(response)),
            );
            observe(call, options);
            void writeRequests(call, requests, input);
          });
      case "bidi_streaming":
        return (requests: AsyncIterable<MessageInitShape<DescMessage>>, options: CallOptions = {}) =>
          readResponses(() => {
            const call = channel.makeBidiStreamRequest(path, serialize, deserialize, toMetadata(options), toGrpcOptions(options));
            void writeRequests(call, requests, input);
            return call;
          }, options);
    }
  }
}

type CancellableCall = EventEmitter & { cancel(): void };
type WritableCall = CancellableCall & { write(message: unknown): boolean; end(): void };

/** Reads a response stream; the call starts when iteration starts and is cancelled when it stops early. */
async function* readResponses(start: () => CancellableCall & AsyncIterable<unknown>, options: CallOptions): AsyncGenerator<unknown> {
  const call = start();
  observe(call, options);
  let finished = false;
  try {
    for await (const message of call) yield message;
    finished = true;
  } catch (error) {
    finished = true;
    throw toConnectError(error);
  } finally {
    if (!finished) call.cancel();
  }
}

async function writeRequests(call: WritableCall, requests: AsyncIterable<MessageInitShape<DescMessage>>, input: DescMessage): Promise<void> {
  let ended = false;
  call.once("status", () => (ended = true));
  try {
    for await (const request of requests) {
      if (ended) return; // the call is over; stop pulling (for await returns the iterable)
      if (!call.write(create(input, request))) await writableAgain(call);
    }
    if (!ended) call.end();
  } catch {
    call.cancel();
  }
}

/** Resolves when the call drains, or ends (status, error, close) while its buffer was full. */
function writableAgain(call: WritableCall): Promise<void> {
  return new Promise<void>((resolve) => {
    const events = ["drain", "status", "error", "close"] as const;
    const done = (): void => {
      for (const event of events) call.off(event, done);
      resolve();
    };
    for (const event of events) call.once(event, done);
  });
}

function observe(call: CancellableCall, options: CallOptions): void {
  if (options.onHeader !== undefined) {
    const onHeader = options.onHeader;
    call.once("metadata", (metadata: Metadata) => onHeader(metadataToHeaders(metadata)));
  }
  if (options.onTrailer !== undefined) {
    const onTrailer = options.onTrailer;
    call.once("status", (status: StatusObject) => onTrailer(metadataToHeaders(status.metadata)));
  }
  const signal = options.signal;
  if (signal !== undefined) {
    if (signal.aborted) call.cancel();
    else {
      const cancel = (): void => call.cancel();
      signal.addEventListener("abort", cancel, { once: true });
      call.once("status", () => signal.removeEventListener("abort", cancel));
    }
  }
}

function toGrpcOptions(options: CallOptions): GrpcCallOptions {
  return options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
}

function toMetadata(options: CallOptions): Metadata {
  return options.headers === undefined ? new Metadata() : headersToMetadata(options.headers);
}

function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  const status = error as Partial<ServiceError>;
  if (typeof status.code === "number") {
    return new ConnectError(status.details ?? status.message ?? "", status.code as number as Code, status.metadata ? metadataToHeaders(status.metadata) : undefined);
  }
  return new ConnectError(String(error), Code.Unknown);
}
