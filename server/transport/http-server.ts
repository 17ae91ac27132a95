import { fromBinary } from "@bufbuild/protobuf";
import { createContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import { precodedBytesOf } from "../rpc/precoded-response.js";
import type { ServiceRegistration } from "../rpc/service-registration.js";
import { peerKey } from "./call-context.js";
import type { TlsMaterial } from "./grpc-server.js";
import { undecodableRequestHandling, type RejectedCallRecorder } from "./undecodable-requests.js";

/** A request handler for plain HTTP routes on the HTTP port (probes, metrics, OTLP/HTTP). */
export type HttpRoute = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void | Promise<void>;

/** Options for {@link createHttpServer}. */
export interface HttpServerOptions {
  /** The services, served over the Connect protocol, gRPC-Web and gRPC. */
  readonly registrations: readonly ServiceRegistration[];
  /** Plain routes by exact path, consulted before the RPC router. */
  readonly routes: ReadonlyMap<string, HttpRoute>;
  /** Largest request and response message in bytes. */
  readonly maxMessageBytes: number;
  /** Aborted when shutdown begins; linked into every call's context signal. */
  readonly shutdownSignal: AbortSignal;
  /** Records the calls connect-node answers before their handler runs (undecodable requests). */
  readonly recordRejectedCall: RejectedCallRecorder;
  readonly tls?: TlsMaterial;
}

/** The HTTP port's server with the bookkeeping a graceful shutdown needs. */
export interface HttpPort {
  readonly server: net.Server;
  /**
   * Stops accepting connections and answers new requests with 503, waits for
   * in-flight requests until `deadline` (epoch ms), then closes every socket.
   */
  close(deadline: number): Promise<void>;
}

/**
 * Creates the HTTP port's server: connect-node serving the same handlers as
 * the gRPC port over Connect (JSON or binary, so curl works), gRPC-Web and
 * gRPC, plus the plain routes.
 *
 * Without TLS one plaintext port takes both HTTP/1.1 and h2c: the first bytes
 * of each connection decide (the HTTP/2 client preface starts with `PRI`).
 * With TLS, ALPN decides.
 */
export function createHttpServer(options: HttpServerOptions): HttpPort {
  const sockets = new Set<net.Socket>();
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const peers = new WeakMap<ServerHttp2Session, string>();
  const undecodable = undecodableRequestHandling(options.recordRejectedCall);
  const rpc = connectNodeAdapter({
    routes: (router) => {
      for (const { service, impl } of options.registrations) router.service(service, impl);
    },
    readMaxBytes: options.maxMessageBytes,
    writeMaxBytes: options.maxMessageBytes,
    shutdownSignal: options.shutdownSignal,
    contextValues: (req) => createContextValues().set(peerKey, peerOf(req, peers)),
    interceptors: [undecodable.interceptor, materializePrecoded],
    requestGate: undecodable.requestGate,
  });
  const handle = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    if (options.shutdownSignal.aborted) {
      res.writeHead(503, { "content-type": "text/plain", "grpc-status": "14", "grpc-message": "server shutting down" });
      res.end("server shutting down\n");
      return;
    }
    inFlight++;
    res.once("close", () => {
      if (--inFlight === 0) idle?.();
    });
    const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
    const route = options.routes.get(path);
    if (route === undefined) {
      rpc(req, res);
      return;
    }
    Promise.resolve(route(req, res)).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  };

  const server = options.tls !== undefined ? secureServer(options.tls, handle, peers) : plaintextServer(handle, peers);
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  const close = async (deadline: number): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        idle = resolve;
        setTimeout(resolve, Math.max(0, deadline - Date.now())).unref();
      });
    }
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  return { server, close };
}

/** How long a new plaintext connection may stay silent before it is closed. */
const firstBytesTimeoutMs = 30_000;

type Handler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;

/** TLS: ALPN chooses HTTP/2 or HTTP/1.1; a client CA turns on mTLS. */
function secureServer(tls: TlsMaterial, handle: Handler, peers: WeakMap<ServerHttp2Session, string>): net.Server {
  const server = http2.createSecureServer(
    {
      allowHTTP1: true,
      cert: tls.cert,
      key: tls.key,
      ...(tls.clientCa !== undefined ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
    },
    handle,
  );
  server.on("session", (session: ServerHttp2Session) => peers.set(session, addressOf(session.socket)));
  return server;
}

/** Plaintext: the first bytes of a connection choose h2c (the `PRI` preface) or HTTP/1.1. */
function plaintextServer(handle: Handler, peers: WeakMap<ServerHttp2Session, string>): net.Server {
  const h1 = http.createServer(handle);
  const h2 = http2.createServer(handle);
  let connectingPeer = "";
  h2.on("session", (session: ServerHttp2Session) => peers.set(session, connectingPeer));
  return net.createServer((socket) => {
    // Node's HTTP servers disable Nagle on their sockets; a bare net.Server
    // does not, and HTTP/2 behind the replaying stream below cannot, so
    // without this every small HTTP/2 response waited ~40 ms for a delayed ACK.
    socket.setNoDelay(true);
    // A connection that never says anything is dropped instead of holding a descriptor.
    socket.setTimeout(firstBytesTimeoutMs, () => socket.destroy());
    let received: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      if (received.length < 3) return; // the protocol is known from the first 3 bytes
      socket.off("data", onData);
      socket.setTimeout(0);
      route(received);
    };
    socket.on("data", onData);
    const route = (first: Buffer): void => {
      if (first.subarray(0, 3).toString("latin1") === "PRI") {
        // Node's HTTP/2 session reads a net.Socket natively and would miss the
        // bytes already read here, so it gets a stream that replays them.
        connectingPeer = addressOf(socket);
        h2.emit("connection", replayingStream(socket, first));
      } else {
        socket.pause();
        socket.unshift(first);
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("error", () => socket.destroy());
  });
}

function peerOf(req: IncomingMessage | Http2ServerRequest, peers: WeakMap<ServerHttp2Session, string>): string {
  if ("stream" in req) return peers.get(req.stream.session as ServerHttp2Session) ?? "";
  return addressOf(req.socket);
}

function addressOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return socket.remoteAddress === undefined ? "" : `${socket.remoteAddress}:${socket.remotePort ?? 0}`;
}

/** A duplex over `socket` that first yields `first`, then the socket's data. */
function replayingStream(socket: net.Socket, first: Buffer): Duplex {
  const stream = new Duplex({
    read: () => {
      socket.resume();
    },
    write: (chunk: Buffer, encoding, callback) => {
      socket.write(chunk, encoding, callback);
    },
    final: (callback) => {
      socket.end(callback);
    },
    destroy: (error, callback) => {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  stream.push(first);
  socket.on("data", (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on("end", () => stream.push(null));
  socket.on("close", () => stream.destroy());
  return stream;
}

/**
 * Turns a unary answer made by `precodedResponse` into the message its bytes
 * encode, so that connect-node serializes it (as JSON too) like any other.
 */
const materializePrecoded: Interceptor = (next) => async (request) => {
  const response = await next(request);
  if (response.stream) return response;
  const bytes = precodedBytesOf(response.message);
  return bytes === undefined ? response : { ...response, message: fromBinary(response.method.output, bytes) };
};
