/**
 * Dispatch to an HTTPS shadow whose certificate chains to a private CA:
 * trusted with `--shadow-tls-ca`, refused (a CONNECTION result) without it,
 * and a clear startup error when the file cannot be read.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatchError, MirrorService } from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";
import { createTestCertificates, type TestCertificates } from "../../fixtures/certificates.js";
import { controlPlanesPerTest, startTestControlPlane } from "../../fixtures/control-plane.js";
import { callOptions as opts, capture, mirrorConfig } from "../../fixtures/mirror.js";

describe("Dispatch to an HTTPS shadow", () => {
  const start = controlPlanesPerTest();
  let dir: string;
  let certs: TestCertificates;
  let shadow: https.Server;
  let endpoint: string;
  const seen: { servername: string | false | null; host: string | undefined }[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "lf-https-shadow-"));
    certs = createTestCertificates(dir);
    shadow = https.createServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (req, res) => {
      seen.push({ servername: (req.socket as TLSSocket).servername, host: req.headers.host });
      res.setHeader("content-type", "application/json");
      res.end('{"ok":true}');
    });
    await new Promise<void>((resolve) => shadow.listen(0, "127.0.0.1", resolve));
    endpoint = `https://localhost:${(shadow.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    shadow.closeAllConnections();
    await new Promise((resolve) => shadow.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  async function dispatchOne(flags: Record<string, string>) {
    const server = await start(flags);
    const mirror = server.grpc(MirrorService);
    await mirror.addMirror({ mirror: mirrorConfig("tls", endpoint) }, opts);
    await mirror.capture(capture("r-1", { headers: { host: "orders.internal:8443", "content-type": "application/json" } }), opts);
    const { results } = await mirror.dispatch({ mirrorId: "tls" }, opts);
    expect(results).toHaveLength(1);
    return results[0]!;
  }

  it("trusts the shadow's private CA with --shadow-tls-ca, naming the endpoint's host in TLS", async () => {
    seen.length = 0;
    const result = await dispatchOne({ "shadow-tls-ca": certs.ca });
    expect(result).toMatchObject({ success: true, responseCode: 200, error: DispatchError.UNSPECIFIED });
    expect(seen).toEqual([{ servername: "localhost", host: "orders.internal-shadow:8443" }]);
  });

  it("records a CONNECTION failure naming the certificate problem without it", async () => {
    seen.length = 0;
    const result = await dispatchOne({});
    expect(result).toMatchObject({ success: false, error: DispatchError.CONNECTION });
    expect(result.errorMessage).toMatch(/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/);
    expect(seen).toEqual([]);
  });

  it("refuses to start when --shadow-tls-ca cannot be read, naming the flag", async () => {
    const missing = join(dir, "missing.pem");
    await expect(startTestControlPlane({ flags: { "shadow-tls-ca": missing } })).rejects.toThrow(`cannot read --shadow-tls-ca ${missing}: ENOENT`);
  });
});
