import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

/** Options for {@link createBrowserTransport}. */
export interface BrowserTransportOptions {
  /** Base URL of the control plane's HTTP port, e.g. `https://cp.example.com:8080`. */
  readonly baseUrl: string;
  /** `connect` (default; JSON, readable in devtools) or `grpc-web`. */
  readonly protocol?: "connect" | "grpc-web";
  /** Binary protobuf instead of JSON (Connect only; gRPC-Web is always binary here). */
  readonly binary?: boolean;
}

/**
 * A fetch-based transport to the HTTP port, for browsers (and any runtime
 * with `fetch`): pass it to `createClient(Service, transport)` from
 * `@connectrpc/connect`. Server streams such as WatchTopology work over it.
 *
 * @example
 * const registry = createClient(RegistryService, createBrowserTransport({ baseUrl: "http://127.0.0.1:8080" }));
 * const { instances } = await registry.resolve({ serviceName: "checkout" });
 */
export function createBrowserTransport(options: BrowserTransportOptions): Transport {
  if (options.protocol === "grpc-web") {
    return createGrpcWebTransport({ baseUrl: options.baseUrl, useBinaryFormat: true });
  }
  return createConnectTransport({ baseUrl: options.baseUrl, useBinaryFormat: options.binary === true });
}
