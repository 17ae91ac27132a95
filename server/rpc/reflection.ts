import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type {
  DescEnum,
  DescExtension,
  DescFile,
  DescMessage,
  DescMethod,
  DescService,
  MessageShape,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { registerService, type ServiceRegistration } from "./service-registration.js";

/** A descriptor that reflection can look up by its fully-qualified name. */
export type DescSymbol = DescService | DescMethod | DescMessage | DescEnum | DescExtension;

/**
 * Lookup tables for answering reflection requests, built once from the
 * served files and everything they import.
 */
export interface DescriptorIndex {
  /** Every reachable file by its proto path (`grpc/health/v1/health.proto`). */
  readonly files: ReadonlyMap<string, DescFile>;
  /**
   * Services, methods (`pkg.Service.Method`), messages, enums and extensions,
   * nested ones included, by fully-qualified name without a leading dot.
   */
  readonly symbols: ReadonlyMap<string, DescSymbol>;
  /** Extensions by extendee type name, then by field number. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, DescExtension>>;
  /**
   * The serialized FileDescriptorProtos a client needs for `file`: the file
   * itself first, then its transitive dependencies. Each file is encoded once
   * and the bytes are reused for every later answer.
   */
  withDependencies(file: DescFile): Uint8Array[];
}

/**
 * Indexes `roots` and all their transitive dependencies for reflection.
 *
 * Throws if two different descriptors claim the same file name, which means
 * two copies of a generated file were loaded.
 */
export function createDescriptorIndex(roots: readonly DescFile[]): DescriptorIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescSymbol>();
  const extensions = new Map<string, Map<number, DescExtension>>();

  const addExtension = (ext: DescExtension): void => {
    symbols.set(ext.typeName, ext);
    const byNumber = extensions.get(ext.extendee.typeName) ?? new Map<number, DescExtension>();
    byNumber.set(ext.number, ext);
    extensions.set(ext.extendee.typeName, byNumber);
  };
  const addMessage = (message: DescMessage): void => {
    symbols.set(message.typeName, message);
    message.nestedMessages.forEach(addMessage);
    for (const e of message.nestedEnums) symbols.set(e.typeName, e);
    message.nestedExtensions.forEach(addExtension);
  };
  const addFile = (file: DescFile): void => {
    // DescFile.name drops the ".proto" suffix; the proto keeps the real path.
    const name = file.proto.name;
    const known = files.get(name);
    if (known === file) return;
    if (known !== undefined) throw new Error(`reflection: two descriptors for file ${name}`);
    files.set(name, file);
    for (const service of file.services) {
      symbols.set(service.typeName, service);
      for (const method of service.methods) symbols.set(`${service.typeName}.${method.name}`, method);
    }
    file.messages.forEach(addMessage);
    for (const e of file.enums) symbols.set(e.typeName, e);
    file.extensions.forEach(addExtension);
    file.dependencies.forEach(addFile);
  };
  roots.forEach(addFile);

  const encoded = new Map<DescFile, Uint8Array>();
  const encode = (file: DescFile): Uint8Array => {
    let bytes = encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file, bytes);
    }
    return bytes;
  };

  return {
    files,
    symbols,
    extensions,
    withDependencies(file) {
      const closure = new Set<DescFile>();
      const visit = (f: DescFile): void => {
        if (closure.has(f)) return;
        closure.add(f);
        f.dependencies.forEach(visit);
      };
      visit(file);
      return [...closure].map(encode);
    },
  };
}

/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) for the given
 * services, so that grpcurl can list, describe and call them without local
 * protos. Pass every other served service (health included); the two
 * reflection services add themselves, so `list_services` answers exactly
 * what the server serves.
 *
 * Every request on the stream gets exactly one response, in order, echoing
 * `original_request` and `valid_host`. Files already sent earlier on the same
 * stream are sent again (the spec allows skipping them; simple clients rely
 * on self-contained answers). Lookup failures are `error_response`s and the
 * stream continues.
 *
 * v1alpha is answered by the v1 logic: the two packages are wire-identical,
 * so messages are converted through their binary encoding.
 */
export function createReflectionServices(services: readonly DescService[]): ServiceRegistration[] {
  const all = [...services, v1.ServerReflection, v1alpha.ServerReflection];
  const index = createDescriptorIndex(all.map((s) => s.file));
  const names = [...new Set(all.map((s) => s.typeName))].sort();
  const answer = (request: v1.ServerReflectionRequest): v1.ServerReflectionResponse =>
    create(v1.ServerReflectionResponseSchema, {
      validHost: request.host,
      originalRequest: request,
      messageResponse: respond(index, names, request.messageRequest),
    });

  return [
    registerService(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) yield answer(request);
      },
    }),
    registerService(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          const v1Request = rewire(v1alpha.ServerReflectionRequestSchema, v1.ServerReflectionRequestSchema, request);
          yield rewire(v1.ServerReflectionResponseSchema, v1alpha.ServerReflectionResponseSchema, answer(v1Request));
        }
      },
    }),
  ];
}

function respond(
  index: DescriptorIndex,
  serviceNames: readonly string[],
  request: v1.ServerReflectionRequest["messageRequest"],
): v1.ServerReflectionResponse["messageResponse"] {
  switch (request.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: create(v1.ListServiceResponseSchema, { service: serviceNames.map((name) => ({ name })) }),
      };
    case "fileByFilename":
      return fileResponse(index, index.files.get(request.value), `file_by_filename: unknown file "${request.value}"`);
    case "fileContainingSymbol":
      return fileResponse(
        index,
        fileOf(index.symbols.get(request.value)),
        `file_containing_symbol: unknown symbol "${request.value}"`,
      );
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = request.value;
      return fileResponse(
        index,
        index.extensions.get(containingType)?.get(extensionNumber)?.file,
        `file_containing_extension: no extension ${extensionNumber} of type "${containingType}"`,
      );
    }
    case "allExtensionNumbersOfType": {
      const typeName = request.value;
      if (index.symbols.get(typeName)?.kind !== "message") {
        return errorResponse(Code.NotFound, `all_extension_numbers_of_type: unknown message type "${typeName}"`);
      }
      const numbers = [...(index.extensions.get(typeName)?.keys() ?? [])].sort((a, b) => a - b);
      return {
        case: "allExtensionNumbersResponse",
        value: create(v1.ExtensionNumberResponseSchema, { baseTypeName: typeName, extensionNumber: numbers }),
      };
    }
    case undefined:
      return errorResponse(Code.InvalidArgument, "message_request must be set");
  }
}

function fileOf(symbol: DescSymbol | undefined): DescFile | undefined {
  if (symbol === undefined) return undefined;
  return symbol.kind === "rpc" ? symbol.parent.file : symbol.file;
}

function fileResponse(
  index: DescriptorIndex,
  file: DescFile | undefined,
  notFound: string,
): v1.ServerReflectionResponse["messageResponse"] {
  if (file === undefined) return errorResponse(Code.NotFound, notFound);
  return {
    case: "fileDescriptorResponse",
    value: create(v1.FileDescriptorResponseSchema, { fileDescriptorProto: index.withDependencies(file) }),
  };
}

function errorResponse(code: Code, message: string): v1.ServerReflectionResponse["messageResponse"] {
  return {
    case: "errorResponse",
    value: create(v1.ErrorResponseSchema, { errorCode: code, errorMessage: message }),
  };
}

/** Converts between wire-identical message types of different packages. */
function rewire<From extends DescMessage, To extends DescMessage>(
  from: From,
  to: To,
  message: MessageShape<From>,
): MessageShape<To> {
  return fromBinary(to, toBinary(from, message));
}
