import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrpcConnection } from "../../../client/grpc-client.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import { createTestCertificates, type TestCertificates } from "../../fixtures/certificates.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";

describe("TLS and mTLS on both ports", () => {
  let dir: string;
  let certs: TestCertificates;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "latticeforge-tls-"));
    certs = createTestCertificates(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe("TLS", () => {
    let server: TestControlPlane;
    beforeAll(async () => {
      server = await startTestControlPlane({ flags: { "tls-cert": certs.serverCert, "tls-key": certs.serverKey } });
    });
    afterAll(() => server.stop());

    it("serves gRPC to a client that trusts the CA", async () => {
      const conn = new GrpcConnection({ address: server.grpcAddress, tls: { ca: certs.ca } });
      try {
        expect((await conn.client(Health).check({ service: "" }, { timeoutMs: 5000 })).status).toBe(Status.SERVING);
      } finally {
        conn.close();
      }
    });

    it("serves Connect over HTTPS (HTTP/1.1 and HTTP/2 by ALPN)", async () => {
      for (const httpVersion of ["1.1", "2"] as const) {
        const transport = createConnectTransport({
          baseUrl: `https://127.0.0.1:${server.controlPlane.httpPort}`,
          httpVersion,
          nodeOptions: { ca: readFileSync(certs.ca) },
        });
        expect((await createClient(Health, transport).check({ service: "" }, { timeoutMs: 5000 })).status).toBe(Status.SERVING);
      }
    });

    it("refuses a plaintext client", async () => {
      const conn = new GrpcConnection({ address: server.grpcAddress });
      try {
        await expect(conn.client(Health).check({ service: "" }, { timeoutMs: 2000 })).rejects.toThrow();
      } finally {
        conn.close();
      }
    });
  });

  describe("mTLS", () => {
    let server: TestControlPlane;
    beforeAll(async () => {
      server = await startTestControlPlane({
        flags: { "tls-cert": certs.serverCert, "tls-key": certs.serverKey, "tls-client-ca": certs.ca },
      });
    });
    afterAll(() => server.stop());

    it("serves a client presenting a certificate from the client CA", async () => {
      const conn = new GrpcConnection({
        address: server.grpcAddress,
        tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
      });
      try {
        expect((await conn.client(Health).check({ service: "" }, { timeoutMs: 5000 })).status).toBe(Status.SERVING);
      } finally {
        conn.close();
      }
    });

    it("refuses a client without a certificate on both ports", async () => {
      const conn = new GrpcConnection({ address: server.grpcAddress, tls: { ca: certs.ca } });
      try {
        await expect(conn.client(Health).check({ service: "" }, { timeoutMs: 2000 })).rejects.toThrow();
      } finally {
        conn.close();
      }
      const transport = createConnectTransport({
        baseUrl: `https://127.0.0.1:${server.controlPlane.httpPort}`,
        httpVersion: "1.1",
        nodeOptions: { ca: readFileSync(certs.ca) },
      });
      await expect(createClient(Health, transport).check({ service: "" }, { timeoutMs: 2000 })).rejects.toThrow();
    });
  });
});
