import { ServerCredentials, type Server } from "@grpc/grpc-js";
import type { HostedServer } from "./run-host.js";

/** How long a graceful grpc-js shutdown may take before calls are cancelled. */
const shutdownTimeoutMs = 2_000;

/** Binds `server` to 127.0.0.1 on a free port, plaintext. */
export function serveLocally(server: Server): Promise<HostedServer> {
  return new Promise((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, grpcPort) => {
      if (error !== null) reject(error);
      else resolve({ grpcPort, stop: () => shutdown(server) });
    });
  });
}

function shutdown(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, shutdownTimeoutMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
