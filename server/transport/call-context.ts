import { createContextKey } from "@connectrpc/connect";

/**
 * The caller's address (`ip:port`), set by both transports in the handler
 * context's values so that logs name the peer whichever port served the call.
 */
export const peerKey = createContextKey<string>("", { description: "remote peer address" });
