/**
 * Streams idle between requests end when their call does — at shutdown with
 * UNAVAILABLE, at once, on both ports — instead of holding the shutdown
 * until --shutdown-timeout forces it.
 */
import { Code, type Client } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ServerReflection } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { startTestControlPlane } from "../../fixtures/control-plane.js";
import { openIdleStreams, type IdleStreams } from "../../fixtures/idle-streams.js";
import { within } from "../../fixtures/streams.js";

describe.each(["grpc", "connect"] as const)("idle request streams over %s", (transport) => {
  it("end with UNAVAILABLE as soon as shutdown begins (bidi and client streaming)", async () => {
    const server = await startTestControlPlane({ flags: { "shutdown-timeout": "30" } });
    const clientOf = <S extends typeof MirrorService | typeof ServerReflection>(service: S): Client<S> =>
      transport === "grpc" ? server.grpc(service) : server.http(service, { httpVersion: "2" });
    let streams: IdleStreams | undefined;
    try {
      streams = await openIdleStreams(clientOf(MirrorService), clientOf(ServerReflection));
      const started = Date.now();
      const shutdown = server.controlPlane.shutdown();
      expect(await streams.reflectionEnd()).toBe(Code.Unavailable);
      expect(await within(streams.captureEnd, 5000, "CaptureStream to end")).toBe(Code.Unavailable);
      await within(shutdown, 10_000, "shutdown");
      expect(Date.now() - started).toBeLessThan(10_000); // not the 30 s --shutdown-timeout
    } finally {
      streams?.release();
      await server.stop();
    }
  });
});
