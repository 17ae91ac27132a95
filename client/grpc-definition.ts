import { fromBinary, toBinary, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

/**
 * Encoded bytes of messages that are sent to many streams (a watch event
 * broadcast to thousands of watchers): encoded once, on first send, and
 * reused for every other stream while the message object is alive.
 */
const encodedOnce = new WeakMap<object, Buffer>();

/**
 * Serializes `message`, reusing the bytes if this very object was serialized
 * before with {@link encodeShared}. Call sites that broadcast one message
 * object to many streams get one encode per message instead of one per
 * stream; messages must not be mutated after their first send.
 */
function encodeShared<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Buffer {
  let bytes = encodedOnce.get(message);
  if (bytes === undefined) {
    bytes = asBuffer(toBinary(schema, message));
    encodedOnce.set(message, bytes);
  }
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
 * Server-streamed responses go through a once-per-object encoding cache, see
 * {@link encodeShared}.
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
      responseSerialize: streamsResponses
        ? (message) => encodeShared(output, message as MessageShape<typeof output>)
        : (message) => asBuffer(toBinary(output, message as MessageShape<typeof output>)),
      responseDeserialize: (bytes: Buffer) => fromBinary(output, bytes),
    };
  }
  return definition as ServiceDefinition;
}
