import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

/** Which protocol a connect-node transport speaks to the HTTP port. */
export type HttpProtocol = "connect" | "grpc-web" | "grpc";

/** Options for {@link createHttpTransport}. */
export interface HttpTransportOptions {
  /** Base URL of the HTTP port, e.g. `http://127.0.0.1:8080`. */
  readonly baseUrl: string;
  /** Default `connect`. `grpc` needs HTTP/2 and is chosen for it. */
  readonly protocol?: HttpProtocol;
  /** Connect and gRPC-Web use JSON when true (default binary). */
  readonly useJson?: boolean;
  /** HTTP version for Connect and gRPC-Web; default 1.1. */
  readonly httpVersion?: "1.1" | "2";
}

/**
 * A connect-node transport to the control plane's HTTP port — what a browser
 * or any Connect client uses; pass it to `createClient(Service, transport)`
 * from `@connectrpc/connect`.
 */
export function createHttpTransport(options: HttpTransportOptions): Transport {
  const common = { baseUrl: options.baseUrl, useBinaryFormat: options.useJson !== true };
  switch (options.protocol ?? "connect") {
    case "connect":
      return createConnectTransport({ ...common, httpVersion: options.httpVersion ?? "1.1" });
    case "grpc-web":
      return createGrpcWebTransport({ ...common, httpVersion: options.httpVersion ?? "1.1" });
    case "grpc":
      return createGrpcTransport({ baseUrl: options.baseUrl });
  }
}
