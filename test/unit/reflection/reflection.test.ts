import { create, createFileRegistry, equals, fromBinary, fromJson, toJson } from "@bufbuild/protobuf";
import type { DescFile, DescMethod, DescMethodUnary, DescService, MessageInitShape } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_api,
  file_google_protobuf_descriptor,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Transport,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { describeSymbol, fetchReflectedRegistry } from "../../../client/reflection-client.js";
import { Health, HealthCheckResponse_ServingStatus, file_grpc_health_v1_health } from "../../../gen/grpc/health/v1/health_pb.js";
import * as v1 from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createDescriptorIndex, createReflectionServices } from "../../../server/rpc/reflection.js";
import { registerService, type ServiceRegistration } from "../../../server/rpc/service-registration.js";

const healthFile = "grpc/health/v1/health.proto";
const servedNames = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

/** Answers Check with SERVING; the rest is out of scope for these tests. */
const health = registerService(Health, {
  check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
  list: () => {
    throw new ConnectError("List is not implemented in this test", Code.Unimplemented);
  },
  async *watch() {
    throw new ConnectError("Watch is not implemented in this test", Code.Unimplemented);
  },
});

/**
 * A service whose file declares extensions (top-level and nested) and
 * imports descriptor.proto and api.proto, so that its closure holds a diamond:
 * api.proto → type.proto → source_context.proto, api.proto → source_context.proto.
 */
function createTaggedFile(): DescFile {
  const optional = FieldDescriptorProto_Label.OPTIONAL;
  const proto = create(FileDescriptorProtoSchema, {
    name: "test/tagged.proto",
    package: "test.tagged",
    syntax: "proto2",
    dependency: [file_google_protobuf_descriptor.proto.name, file_google_protobuf_api.proto.name],
    messageType: [
      {
        name: "Holder",
        field: [{ name: "api", number: 1, label: optional, type: FieldDescriptorProto_Type.MESSAGE, typeName: ".google.protobuf.Api" }],
        extension: [
          { name: "nested_tag", number: 50002, label: optional, type: FieldDescriptorProto_Type.INT32, extendee: ".google.protobuf.MessageOptions" },
        ],
      },
    ],
    extension: [
      { name: "tag", number: 50001, label: optional, type: FieldDescriptorProto_Type.STRING, extendee: ".google.protobuf.MessageOptions" },
    ],
    service: [{ name: "Tagged", method: [{ name: "Get", inputType: ".test.tagged.Holder", outputType: ".test.tagged.Holder" }] }],
  });
  const imports = [file_google_protobuf_descriptor, file_google_protobuf_api];
  const registry = createFileRegistry(proto, (name) => imports.find((f) => f.proto.name === name));
  const file = registry.getFile(proto.name);
  if (file === undefined) throw new Error("test/tagged.proto did not build");
  return file;
}

function createTransport(extra: readonly DescService[] = []): Transport {
  const regs: ServiceRegistration[] = [
    health,
    ...createReflectionServices([Health, ...extra]),
  ];
  return createRouterTransport((router) => {
    for (const r of regs) router.service(r.service, r.impl);
  });
}

type V1Request = MessageInitShape<typeof v1.ServerReflectionRequestSchema>;

async function* each<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** Sends all requests on one v1 stream and collects every response. */
async function reflectV1(transport: Transport, requests: readonly V1Request[]): Promise<v1.ServerReflectionResponse[]> {
  const responses: v1.ServerReflectionResponse[] = [];
  const stream = createClient(v1.ServerReflection, transport).serverReflectionInfo(each(requests), {
    signal: AbortSignal.timeout(5000),
  });
  for await (const response of stream) responses.push(response);
  return responses;
}

function filesOf(response: v1.ServerReflectionResponse | undefined): FileDescriptorProto[] {
  if (response?.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected a file_descriptor_response, got ${JSON.stringify(response?.messageResponse)}`);
  }
  return response.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

function errorOf(response: v1.ServerReflectionResponse | undefined): { errorCode: number; errorMessage: string } {
  if (response?.messageResponse.case !== "errorResponse") {
    throw new Error(`expected an error_response, got ${JSON.stringify(response?.messageResponse)}`);
  }
  const { errorCode, errorMessage } = response.messageResponse.value;
  return { errorCode, errorMessage };
}

/** Every import of every returned file is itself among the returned files. */
function expectSelfContained(protos: readonly FileDescriptorProto[]): void {
  const names = new Set(protos.map((p) => p.name));
  expect(names.size).toBe(protos.length);
  for (const p of protos) for (const dep of p.dependency) expect(names, `${p.name} imports ${dep}`).toContain(dep);
}

describe("reflection list_services", () => {
  it("lists every served service, sorted (v1)", async () => {
    const [response] = await reflectV1(createTransport(), [{ messageRequest: { case: "listServices", value: "*" } }]);
    expect(response?.messageResponse.case).toBe("listServicesResponse");
    if (response?.messageResponse.case !== "listServicesResponse") return;
    expect(response.messageResponse.value.service.map((s) => s.name)).toEqual(servedNames);
  });

  it("lists every served service, sorted, and echoes the request (v1alpha)", async () => {
    const request = create(v1alpha.ServerReflectionRequestSchema, {
      host: "localhost:50051",
      messageRequest: { case: "listServices", value: "" },
    });
    const responses: v1alpha.ServerReflectionResponse[] = [];
    const stream = createClient(v1alpha.ServerReflection, createTransport()).serverReflectionInfo(each([request]), {
      signal: AbortSignal.timeout(5000),
    });
    for await (const response of stream) responses.push(response);

    expect(responses).toHaveLength(1);
    const [response] = responses;
    expect(response?.validHost).toBe("localhost:50051");
    expect(response?.originalRequest?.$typeName).toBe("grpc.reflection.v1alpha.ServerReflectionRequest");
    expect(equals(v1alpha.ServerReflectionRequestSchema, response!.originalRequest!, request)).toBe(true);
    expect(response?.messageResponse.case).toBe("listServicesResponse");
    if (response?.messageResponse.case !== "listServicesResponse") return;
    expect(response.messageResponse.value.service.map((s) => s.name)).toEqual(servedNames);
  });
});

describe("reflection file lookups", () => {
  it.each([
    ["a service", "grpc.health.v1.Health", healthFile],
    ["a method", "grpc.health.v1.Health.Check", healthFile],
    ["a message", "grpc.health.v1.HealthCheckRequest", healthFile],
    ["a nested enum", "grpc.health.v1.HealthCheckResponse.ServingStatus", healthFile],
    ["a v1 reflection message", "grpc.reflection.v1.ServerReflectionResponse", "grpc/reflection/v1/reflection.proto"],
    ["the v1alpha reflection service", "grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"],
  ])("file_containing_symbol finds %s", async (_, symbol, file) => {
    const [response] = await reflectV1(createTransport(), [
      { messageRequest: { case: "fileContainingSymbol", value: symbol } },
    ]);
    const protos = filesOf(response);
    expect(protos.map((p) => p.name)).toEqual([file]);
  });

  it("file_by_filename answers the file", async () => {
    const [response] = await reflectV1(createTransport(), [
      { messageRequest: { case: "fileByFilename", value: "grpc/reflection/v1alpha/reflection.proto" } },
    ]);
    const [proto] = filesOf(response);
    expect(proto?.package).toBe("grpc.reflection.v1alpha");
    expect(proto?.service.map((s) => s.name)).toEqual(["ServerReflection"]);
  });

  it("embeds fully-qualified type names and json names, but no source comments", async () => {
    const [response] = await reflectV1(createTransport(), [
      { messageRequest: { case: "fileByFilename", value: healthFile } },
    ]);
    const [proto] = filesOf(response);
    const status = proto?.messageType.find((m) => m.name === "HealthCheckResponse")?.field[0];
    expect(status?.typeName).toBe(".grpc.health.v1.HealthCheckResponse.ServingStatus");
    expect(status?.jsonName).toBe("status");
    expect(proto?.service[0]?.method.map((m) => [m.name, m.inputType, m.serverStreaming])).toEqual([
      ["Check", ".grpc.health.v1.HealthCheckRequest", false],
      ["List", ".grpc.health.v1.HealthListRequest", false],
      ["Watch", ".grpc.health.v1.HealthCheckRequest", true],
    ]);
    expect(proto?.options?.goPackage).toBe("google.golang.org/grpc/health/grpc_health_v1");
    expect(proto?.sourceCodeInfo).toBeUndefined();
  });

  it("answers the requested file first, then all transitive imports, well-known types included", async () => {
    const tagged = createTaggedFile();
    const [response] = await reflectV1(createTransport(tagged.services), [
      { messageRequest: { case: "fileContainingSymbol", value: "test.tagged.Tagged.Get" } },
    ]);
    const protos = filesOf(response);
    expect(protos[0]?.name).toBe("test/tagged.proto");
    expect(protos.map((p) => p.name).sort()).toEqual([
      "google/protobuf/any.proto",
      "google/protobuf/api.proto",
      "google/protobuf/descriptor.proto",
      "google/protobuf/source_context.proto",
      "google/protobuf/type.proto",
      "test/tagged.proto",
    ]);
    expectSelfContained(protos);
  });
});

describe("reflection errors and stream behaviour", () => {
  it("answers several requests in order, echoing each, and keeps going after errors", async () => {
    const requests: V1Request[] = [
      { host: "h1", messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Nope" } },
      { messageRequest: { case: "listServices", value: "" } },
      { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
      {},
      { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" } },
      // Repeats are answered in full: files sent earlier on the stream are not skipped.
      { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" } },
    ];
    const responses = await reflectV1(createTransport(), requests);

    expect(responses).toHaveLength(requests.length);
    responses.forEach((response, i) => {
      const sent = create(v1.ServerReflectionRequestSchema, requests[i]);
      expect(equals(v1.ServerReflectionRequestSchema, response.originalRequest!, sent)).toBe(true);
      expect(response.validHost).toBe(sent.host);
    });
    expect(errorOf(responses[0])).toEqual({
      errorCode: Code.NotFound,
      errorMessage: 'file_containing_symbol: unknown symbol "grpc.health.v1.Nope"',
    });
    expect(responses[1]?.messageResponse.case).toBe("listServicesResponse");
    expect(errorOf(responses[2])).toEqual({
      errorCode: Code.NotFound,
      errorMessage: 'file_by_filename: unknown file "nope.proto"',
    });
    expect(errorOf(responses[3])).toEqual({ errorCode: Code.InvalidArgument, errorMessage: "message_request must be set" });
    expect(filesOf(responses[4]).map((p) => p.name)).toEqual([healthFile]);
    expect(filesOf(responses[5]).map((p) => p.name)).toEqual([healthFile]);
  });

  it("answers extension queries from the extensions of the served files", async () => {
    const tagged = createTaggedFile();
    const extensionOf = (containingType: string, extensionNumber: number): V1Request => ({
      messageRequest: { case: "fileContainingExtension", value: { containingType, extensionNumber } },
    });
    const numbersOf = (type: string): V1Request => ({ messageRequest: { case: "allExtensionNumbersOfType", value: type } });
    const responses = await reflectV1(createTransport(tagged.services), [
      extensionOf("google.protobuf.MessageOptions", 50002),
      extensionOf("google.protobuf.MessageOptions", 7),
      numbersOf("google.protobuf.MessageOptions"),
      numbersOf("grpc.health.v1.HealthCheckRequest"),
      numbersOf("grpc.health.v1.Nope"),
      numbersOf("grpc.health.v1.HealthCheckResponse.ServingStatus"),
    ]);

    expect(filesOf(responses[0])[0]?.name).toBe("test/tagged.proto");
    expect(errorOf(responses[1])).toEqual({
      errorCode: Code.NotFound,
      errorMessage: 'file_containing_extension: no extension 7 of type "google.protobuf.MessageOptions"',
    });
    expect(responses[2]?.messageResponse.value).toMatchObject({
      baseTypeName: "google.protobuf.MessageOptions",
      extensionNumber: [50001, 50002],
    });
    expect(responses[3]?.messageResponse.value).toMatchObject({
      baseTypeName: "grpc.health.v1.HealthCheckRequest",
      extensionNumber: [],
    });
    expect(errorOf(responses[4]).errorCode).toBe(Code.NotFound);
    expect(errorOf(responses[5]).errorCode).toBe(Code.NotFound);
  });
});

describe("createDescriptorIndex", () => {
  it("indexes api.proto with its transitive imports and answers them self-contained", () => {
    const index = createDescriptorIndex([file_google_protobuf_api]);
    expect([...index.files.keys()].sort()).toEqual([
      "google/protobuf/any.proto",
      "google/protobuf/api.proto",
      "google/protobuf/source_context.proto",
      "google/protobuf/type.proto",
    ]);
    expect(index.symbols.get("google.protobuf.Field.Kind")?.kind).toBe("enum");
    expect(index.symbols.get("google.protobuf.Any")?.kind).toBe("message");

    const protos = index.withDependencies(file_google_protobuf_api).map((b) => fromBinary(FileDescriptorProtoSchema, b));
    expect(protos[0]?.name).toBe("google/protobuf/api.proto");
    expect(protos).toHaveLength(4);
    expectSelfContained(protos);
  });

  it("finds every import of every served file among the descriptors it answers", () => {
    const index = createDescriptorIndex([Health.file, v1.ServerReflection.file, v1alpha.ServerReflection.file, createTaggedFile()]);
    for (const file of index.files.values()) {
      expect(file.proto.dependency).toEqual(file.dependencies.map((d) => d.proto.name));
      const protos = index.withDependencies(file).map((b) => fromBinary(FileDescriptorProtoSchema, b));
      expect(protos[0]?.name).toBe(file.proto.name);
      expectSelfContained(protos);
    }
  });

  it("encodes each file once and reuses the bytes", () => {
    const index = createDescriptorIndex([file_google_protobuf_api]);
    expect(index.withDependencies(file_google_protobuf_api)[0]).toBe(index.withDependencies(file_google_protobuf_api)[0]);
  });

  it("rejects two different descriptors for the same file", () => {
    const copy = createFileRegistry(create(FileDescriptorSetSchema, { file: [file_grpc_health_v1_health.proto] }));
    expect(() => createDescriptorIndex([file_grpc_health_v1_health, copy.getFile(healthFile)!])).toThrow(
      `reflection: two descriptors for file ${healthFile}`,
    );
  });
});

describe("fetchReflectedRegistry", () => {
  it("builds a registry from reflection alone and calls Health.Check dynamically from JSON", async () => {
    const transport = createTransport();
    const { services, registry } = await fetchReflectedRegistry(transport, { timeoutMs: 5000 });
    expect(services).toEqual(servedNames);

    const reflected = registry.getService("grpc.health.v1.Health");
    expect(reflected).toBeDefined();
    expect(reflected).not.toBe(Health);
    const isUnary = (m: DescMethod): m is DescMethodUnary => m.methodKind === "unary";
    const check = reflected!.methods.find((m) => m.name === "Check");
    if (check === undefined || !isUnary(check)) throw new Error("Health.Check is missing or not unary");

    const request = fromJson(check.input, { service: "" }, { registry });
    const response = await transport.unary(check, undefined, 5000, undefined, request);
    expect(toJson(check.output, response.message, { registry })).toEqual({ status: "SERVING" });
  });

  it("orders files by imports, so a diamond of well-known types loads", async () => {
    const { services, registry } = await fetchReflectedRegistry(createTransport(createTaggedFile().services), {
      signal: AbortSignal.timeout(5000),
    });
    expect(services).toContain("test.tagged.Tagged");
    expect(registry.getMessage("test.tagged.Holder")?.field.api?.message?.typeName).toBe("google.protobuf.Api");
    expect(registry.getFile("google/protobuf/source_context.proto")).toBeDefined();
  });
});

describe("describeSymbol", () => {
  it("renders a service with streaming markers", async () => {
    const { registry } = await fetchReflectedRegistry(createTransport(), { timeoutMs: 5000 });
    expect(describeSymbol(registry, "grpc.health.v1.Health")).toBe(
      [
        "grpc.health.v1.Health is a service:",
        "service Health {",
        "  rpc Check ( .grpc.health.v1.HealthCheckRequest ) returns ( .grpc.health.v1.HealthCheckResponse );",
        "  rpc List ( .grpc.health.v1.HealthListRequest ) returns ( .grpc.health.v1.HealthListResponse );",
        "  rpc Watch ( .grpc.health.v1.HealthCheckRequest ) returns ( stream .grpc.health.v1.HealthCheckResponse );",
        "}",
      ].join("\n"),
    );
    expect(describeSymbol(registry, "grpc.reflection.v1.ServerReflection.ServerReflectionInfo")).toBe(
      [
        "grpc.reflection.v1.ServerReflection.ServerReflectionInfo is a method:",
        "rpc ServerReflectionInfo ( stream .grpc.reflection.v1.ServerReflectionRequest ) returns ( stream .grpc.reflection.v1.ServerReflectionResponse );",
      ].join("\n"),
    );
  });

  it("renders messages with nested enums, maps and oneofs", async () => {
    const { registry } = await fetchReflectedRegistry(createTransport(), { timeoutMs: 5000 });
    expect(describeSymbol(registry, "grpc.health.v1.HealthCheckResponse")).toBe(
      [
        "grpc.health.v1.HealthCheckResponse is a message:",
        "message HealthCheckResponse {",
        "  .grpc.health.v1.HealthCheckResponse.ServingStatus status = 1;",
        "  enum ServingStatus {",
        "    UNKNOWN = 0;",
        "    SERVING = 1;",
        "    NOT_SERVING = 2;",
        "    SERVICE_UNKNOWN = 3;",
        "  }",
        "}",
      ].join("\n"),
    );
    expect(describeSymbol(registry, "grpc.health.v1.HealthListResponse")).toContain(
      "  map<string, .grpc.health.v1.HealthCheckResponse> statuses = 1;",
    );
    const request = describeSymbol(registry, "grpc.reflection.v1.ServerReflectionRequest");
    expect(request).toContain("  string host = 1;\n  oneof message_request {\n    string file_by_filename = 3;");
    expect(request).toContain("    .grpc.reflection.v1.ExtensionRequest file_containing_extension = 5;");
    expect(describeSymbol(registry, "grpc.reflection.v1.ExtensionNumberResponse")).toContain(
      "  repeated int32 extension_number = 2;",
    );
  });

  it("renders proto2 labels and extensions, and rejects unknown symbols", async () => {
    const { registry } = await fetchReflectedRegistry(createTransport(createTaggedFile().services), { timeoutMs: 5000 });
    expect(describeSymbol(registry, "test.tagged.Holder")).toContain("  optional .google.protobuf.Api api = 1;");
    expect(describeSymbol(registry, "test.tagged.tag")).toBe(
      "test.tagged.tag is an extension:\nextend .google.protobuf.MessageOptions {\n  optional string tag = 50001;\n}",
    );
    expect(() => describeSymbol(registry, "grpc.health.v1.Health.Nope")).toThrow("symbol not found: grpc.health.v1.Health.Nope");
  });
});
