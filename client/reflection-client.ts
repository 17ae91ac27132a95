import { create, createFileRegistry, fromBinary, ScalarType } from "@bufbuild/protobuf";
import type {
  DescEnum,
  DescExtension,
  DescField,
  DescMessage,
  DescMethod,
  DescService,
  FileRegistry,
  MessageInitShape,
} from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { ServerReflection, type ServerReflectionRequestSchema } from "../gen/grpc/reflection/v1/reflection_pb.js";

/** Options for {@link fetchReflectedRegistry}. */
export interface ReflectionFetchOptions {
  /** Cancels the reflection stream. */
  signal?: AbortSignal;
  /** Deadline for the whole reflection stream, in milliseconds. */
  timeoutMs?: number;
}

/** What a server describes about itself through reflection. */
export interface ReflectedSchema {
  /** Fully-qualified names of the served services, as the server lists them. */
  services: string[];
  /** Every file the services are declared in, with all their imports. */
  registry: FileRegistry;
}

/**
 * Builds a schema purely from gRPC server reflection (v1), as grpcurl does:
 * one stream asks `list_services`, then `file_containing_symbol` for each
 * service, and the returned FileDescriptorProtos (with their transitive
 * imports) become a `FileRegistry`. With it, requests can be built from JSON
 * and methods invoked without any generated code.
 *
 * Throws a `ConnectError` carrying the server's code if reflection answers a
 * lookup with `error_response`, and `Code.Internal` if the server's answers
 * are incomplete (no service list, or a file whose import was not sent).
 *
 * @example
 * ```ts
 * const { registry } = await fetchReflectedRegistry(transport, { timeoutMs: 5000 });
 * const check = registry.getService("grpc.health.v1.Health")?.methods.find((m) => m.name === "Check");
 * ```
 */
export async function fetchReflectedRegistry(
  transport: Transport,
  options: ReflectionFetchOptions = {},
): Promise<ReflectedSchema> {
  const client = createClient(ServerReflection, transport);
  let onListed!: (services: readonly string[]) => void;
  const listed = new Promise<readonly string[]>((resolve) => (onListed = resolve));
  async function* requests(): AsyncGenerator<MessageInitShape<typeof ServerReflectionRequestSchema>> {
    yield { messageRequest: { case: "listServices", value: "" } };
    for (const service of await listed) {
      yield { messageRequest: { case: "fileContainingSymbol", value: service } };
    }
  }

  let services: string[] | undefined;
  const protos = new Map<string, FileDescriptorProto>();
  try {
    for await (const { messageResponse: answer } of client.serverReflectionInfo(requests(), options)) {
      switch (answer.case) {
        case "listServicesResponse":
          services = answer.value.service.map((s) => s.name);
          onListed(services);
          break;
        case "fileDescriptorResponse":
          for (const bytes of answer.value.fileDescriptorProto) {
            const proto = fromBinary(FileDescriptorProtoSchema, bytes);
            if (!protos.has(proto.name)) protos.set(proto.name, proto);
          }
          break;
        case "errorResponse":
          throw new ConnectError(`reflection: ${answer.value.errorMessage}`, answer.value.errorCode as Code);
        default:
          throw new ConnectError(`reflection: unexpected response ${String(answer.case)}`, Code.Internal);
      }
    }
  } finally {
    // Lets the request generator finish (half-closing the stream) on every path.
    onListed([]);
  }
  if (services === undefined) {
    throw new ConnectError("reflection: the server did not list its services", Code.Internal);
  }
  const files = create(FileDescriptorSetSchema, { file: inDependencyOrder(protos) });
  return { services, registry: createFileRegistry(files) };
}

/**
 * Orders files so that every file comes after its imports, as
 * `createFileRegistry(FileDescriptorSet)` requires. (Its resolver overload is
 * no substitute: protobuf-es 2.17 adds a diamond import such as api.proto →
 * type.proto → source_context.proto in the wrong order.)
 */
function inDependencyOrder(protos: ReadonlyMap<string, FileDescriptorProto>): FileDescriptorProto[] {
  const ordered: FileDescriptorProto[] = [];
  const visited = new Set<string>();
  const visit = (proto: FileDescriptorProto): void => {
    if (visited.has(proto.name)) return;
    visited.add(proto.name);
    for (const name of proto.dependency) {
      const dependency = protos.get(name);
      if (dependency === undefined) {
        throw new ConnectError(`reflection: ${proto.name} imports ${name}, which the server did not send`, Code.Internal);
      }
      visit(dependency);
    }
    ordered.push(proto);
  };
  protos.forEach(visit);
  return ordered;
}

/**
 * Renders a service, method, message, enum or extension from `registry` as
 * proto-like text, in the shape of grpcurl's `describe`. Type references are
 * fully qualified with a leading dot.
 *
 * Throws if `name` is not a symbol of the registry.
 *
 * @example
 * ```ts
 * describeSymbol(registry, "grpc.health.v1.Health.Watch");
 * // grpc.health.v1.Health.Watch is a method:
 * // rpc Watch ( .grpc.health.v1.HealthCheckRequest ) returns ( stream .grpc.health.v1.HealthCheckResponse );
 * ```
 */
export function describeSymbol(registry: FileRegistry, name: string): string {
  const desc = registry.get(name);
  switch (desc?.kind) {
    case "service":
      return `${name} is a service:\n${renderService(desc)}`;
    case "message":
      return `${name} is a message:\n${renderMessage(desc, "")}`;
    case "enum":
      return `${name} is an enum:\n${renderEnum(desc, "")}`;
    case "extension":
      return `${name} is an extension:\nextend .${desc.extendee.typeName} {\n  ${renderField(desc)}\n}`;
  }
  const dot = name.lastIndexOf(".");
  const method = registry.getService(name.slice(0, dot))?.methods.find((m) => m.name === name.slice(dot + 1));
  if (method === undefined) throw new Error(`symbol not found: ${name}`);
  return `${name} is a method:\n${renderMethod(method)}`;
}

function renderService(service: DescService): string {
  const rpcs = service.methods.map((m) => `  ${renderMethod(m)}\n`).join("");
  return `service ${service.name} {\n${rpcs}}`;
}

function renderMethod(method: DescMethod): string {
  const clientStream = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
  const serverStream = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
  const input = `${clientStream ? "stream " : ""}.${method.input.typeName}`;
  const output = `${serverStream ? "stream " : ""}.${method.output.typeName}`;
  return `rpc ${method.name} ( ${input} ) returns ( ${output} );`;
}

function renderMessage(message: DescMessage, indent: string): string {
  const inner = indent + "  ";
  const lines: string[] = [];
  for (const member of message.members) {
    if (member.kind === "field") {
      lines.push(inner + renderField(member));
    } else {
      lines.push(`${inner}oneof ${member.name} {`);
      for (const field of member.fields) lines.push(`${inner}  ${renderField(field)}`);
      lines.push(`${inner}}`);
    }
  }
  for (const nested of message.nestedMessages) lines.push(renderMessage(nested, inner));
  for (const nested of message.nestedEnums) lines.push(renderEnum(nested, inner));
  return [`${indent}message ${message.name} {`, ...lines, `${indent}}`].join("\n");
}

function renderEnum(desc: DescEnum, indent: string): string {
  const values = desc.values.map((v) => `${indent}  ${v.name} = ${v.number};`);
  return [`${indent}enum ${desc.name} {`, ...values, `${indent}}`].join("\n");
}

function renderField(field: DescField | DescExtension): string {
  return `${label(field)}${fieldType(field)} ${field.name} = ${field.number};`;
}

/** The label as the source spells it: editions have none, proto3 only `optional`. */
function label(field: DescField | DescExtension): string {
  if (field.fieldKind === "list") return "repeated ";
  if (field.fieldKind === "map" || field.oneof !== undefined) return "";
  if (field.proto.proto3Optional) return "optional ";
  const file = field.kind === "extension" ? field.file : field.parent.file;
  if (file.proto.syntax !== "" && file.proto.syntax !== "proto2") return "";
  return field.proto.label === FieldDescriptorProto_Label.REQUIRED ? "required " : "optional ";
}

function fieldType(field: DescField | DescExtension): string {
  switch (field.fieldKind) {
    case "scalar":
      return scalarName(field.scalar);
    case "enum":
      return `.${field.enum.typeName}`;
    case "message":
      return `.${field.message.typeName}`;
    case "list":
      if (field.listKind === "scalar") return scalarName(field.scalar);
      return `.${(field.listKind === "enum" ? field.enum : field.message).typeName}`;
    case "map": {
      if (field.mapKind === "scalar") return `map<${scalarName(field.mapKey)}, ${scalarName(field.scalar)}>`;
      const value = field.mapKind === "enum" ? field.enum : field.message;
      return `map<${scalarName(field.mapKey)}, .${value.typeName}>`;
    }
  }
}

function scalarName(scalar: ScalarType): string {
  return ScalarType[scalar].toLowerCase();
}
