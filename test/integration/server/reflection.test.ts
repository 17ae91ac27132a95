import { fromJson, toJson, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrpcConnection } from "../../../client/grpc-client.js";
import { describeSymbol, fetchReflectedRegistry } from "../../../client/reflection-client.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";

describe("server reflection on the gRPC port: grpcurl's list, describe and call", () => {
  let server: TestControlPlane;
  beforeAll(async () => {
    server = await startTestControlPlane();
  });
  afterAll(() => server.stop());

  it("lists every served service, reflection itself included", async () => {
    const transport = createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` });
    const { services } = await fetchReflectedRegistry(transport, { timeoutMs: 5000 });
    expect(services).toEqual([
      "envoy.service.discovery.v3.AggregatedDiscoveryService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "latticeforge.mirror.v1.MirrorService",
      "latticeforge.registry.v1.RegistryService",
      "latticeforge.tracing.v1.TraceCollectorService",
      "latticeforge.xds.v1.XdsAdminService",
      "opentelemetry.proto.collector.trace.v1.TraceService",
    ]);
  });

  it("describes our own services with their well-known-type imports resolved", async () => {
    const transport = createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` });
    const { registry } = await fetchReflectedRegistry(transport, { timeoutMs: 5000 });
    const described = describeSymbol(registry, "latticeforge.registry.v1.ServiceInstance");
    expect(described).toContain(".google.protobuf.Timestamp registered_at = 8;");
    expect(registry.getFile("google/protobuf/timestamp.proto")).toBeDefined();
  });

  it("describes a service and calls a method with a schema built only from reflection", async () => {
    const transport = createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` });
    const { registry } = await fetchReflectedRegistry(transport, { timeoutMs: 5000 });
    expect(describeSymbol(registry, "grpc.health.v1.Health")).toContain("rpc Watch ( .grpc.health.v1.HealthCheckRequest ) returns ( stream .grpc.health.v1.HealthCheckResponse );");

    const service = registry.getService("grpc.health.v1.Health");
    expect(service).toBeDefined();
    const check = service!.methods.find((m) => m.name === "Check");
    expect(check).toBeDefined();
    // The same steps as `grpcurl -d '{"service": ""}' ADDR grpc.health.v1.Health/Check`,
    // sent through grpc-js with the reflected descriptors as serializers.
    const conn = new GrpcConnection({ address: server.grpcAddress });
    try {
      const client = conn.client(service!) as unknown as Record<string, (req: unknown, opts: unknown) => Promise<unknown>>;
      const request = fromJson(check!.input, { service: "" } as JsonValue, { registry });
      const response = await client[check!.localName]!(request, { timeoutMs: 5000 });
      expect(toJson(check!.output as DescMessage, response as never, { registry })).toEqual({ status: "SERVING" });
    } finally {
      conn.close();
    }
  });
});
