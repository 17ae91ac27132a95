import { fromBinary, toBinary, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

/**
 * Encoded bytes of messages that are sent many times: a watch event
 * broadcast to thousands of watchers, or a cached unary answer (or set in
 * advance by {@link presetEncoding}). Encoded once,
 * on first send, and reused while the message object is alive. `null` marks
 * a unary response that opted in (see {@link shareEncoding}) but was not
 * encoded yet.
 */
const encodedOnce = new WeakMap<object, Buffer | null>();

/**
 * Marks a unary response message that will be answered many times (a cached
 * Resolve answer), so the gRPC port encodes it once. The message must not be
 * mutated afterwards. Streamed responses are always encoded once per object.
 */
export function shareEncoding<T extends object>(message: T): T {
  if (!encodedOnce.has(message)) encodedOnce.set(message, null);
  return message;
}

/**
 * Gives `message` its encoding ahead of time: the gRPC port sends `bytes`
 * instead of encoding the object (a server's hand-written answer). The
 * message must not be mutated afterwards.
 */
export function presetEncoding<T extends object>(message: T, bytes: Uint8Array): T {
  encodedOnce.set(message, asBuffer(bytes));
  return message;
}

/**
 * Serializes `message`, reusing the bytes if this very object was serialized
 * before. `always` caches every object (streams); otherwise only objects
 * marked by {@link shareEncoding} are cached.
 */
function encodeShared<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, always: boolean): Buffer {
  const cached = encodedOnce.get(message);
  if (cached) return cached;
  const bytes = asBuffer(toBinary(schema, message));
  if (always || cached === null) encodedOnce.set(message, bytes);
  return bytes;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Builds the grpc-js service definition of a protobuf-es service descriptor:
 * paths `/package.Service/Method` and serializers from the generated schemas
 * (`toBinary` / `fromBinary`), for both `Server.addService` and
 * `makeGenericClientConstructor`. Keys are the methods' `localName`s, the
 * same keys as connect-es `ServiceImpl` and `Client` objects.
 *
 * Server-streamed responses, and unary ones marked with
 * {@link shareEncoding}, are encoded once per message object.
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    const { input, output } = method;
    const streamsResponses = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      originalName: method.name,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: streamsResponses,
      requestSerialize: (message) => asBuffer(toBinary(input, message as MessageShape<typeof input>)),
      requestDeserialize: (bytes: Buffer) => fromBinary(input, bytes),
      responseSerialize: (message) => encodeShared(output, message as MessageShape<typeof output>, streamsResponses),
      responseDeserialize: (bytes: Buffer) => fromBinary(output, bytes),
    };
  }
  return definition as ServiceDefinition;
}
