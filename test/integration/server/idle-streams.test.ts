/**
 * Streams idle between requests end when their call does — at shutdown with
 * UNAVAILABLE, at once, on both ports — instead of holding the shutdown
 * until --shutdown-timeout forces it.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ServerReflection } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { startTestControlPlane } from "../../fixtures/control-plane.js";
import { callOptions, capture, mirrorConfig } from "../../fixtures/mirror.js";
import { nextWithin, within } from "../../fixtures/streams.js";

const codeOf = (error: unknown): unknown => (error instanceof ConnectError ? error.code : error);

describe.each(["grpc", "connect"] as const)("idle request streams over %s", (transport) => {
  it("end with UNAVAILABLE as soon as shutdown begins (bidi and client streaming)", async () => {
    const server = await startTestControlPlane({ flags: { "shutdown-timeout": "30" } });
    let finishRequests = (): void => undefined;
    const idle = new Promise<void>((resolve) => (finishRequests = resolve));
    async function* reflectionRequests() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
      await idle; // never half-closes
    }
    async function* captures() {
      yield { capture: capture("idle-1") };
      await idle;
    }
    try {
      const clientOf = <S extends typeof MirrorService | typeof ServerReflection>(service: S): Client<S> =>
        transport === "grpc" ? server.grpc(service) : server.http(service, { httpVersion: "2" });
      const mirror = clientOf(MirrorService);
      await mirror.addMirror({ mirror: mirrorConfig("idle", "http://127.0.0.1:9") }, callOptions);
      const reflection = clientOf(ServerReflection).serverReflectionInfo(reflectionRequests(), { timeoutMs: 30_000 })[Symbol.asyncIterator]();
      expect((await nextWithin(reflection)).value?.messageResponse.case).toBe("listServicesResponse");
      const captureStream = mirror.captureStream(captures(), { timeoutMs: 30_000 }).then(() => "ok", codeOf);
      await expect
        .poll(async () => Number((await mirror.stats({}, callOptions)).mirrors.find((m) => m.mirrorId === "idle")?.captured ?? 0), { timeout: 5000 })
        .toBe(1);

      const started = Date.now();
      const shutdown = server.controlPlane.shutdown();
      expect(await nextWithin(reflection, 5000).then(() => "no error", codeOf)).toBe(Code.Unavailable);
      expect(await within(captureStream, 5000, "CaptureStream to end")).toBe(Code.Unavailable);
      await within(shutdown, 10_000, "shutdown");
      expect(Date.now() - started).toBeLessThan(10_000); // not the 30 s --shutdown-timeout
    } finally {
      finishRequests();
      await server.stop();
    }
  });
});
