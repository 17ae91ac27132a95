import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { presetEncoding } from "../../client/grpc-definition.js";

/** The bytes of each placeholder made by {@link precodedResponse}. */
const precodedBytes = new WeakMap<object, Uint8Array>();

/**
 * A unary answer whose protobuf encoding the handler wrote itself (for an
 * answer too large to build as messages and encode on every call, like a
 * whole trace). The handler returns the placeholder this gives: an empty
 * message of `schema`, with `bytes` attached. The gRPC port sends the bytes
 * as they are (`presetEncoding`); the HTTP port decodes them into the
 * message first, so its Connect JSON and binary answers are the same
 * message (see `materializePrecoded`).
 *
 * @param bytes a valid encoding of a `schema` message; not copied
 */
export function precodedResponse<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  const placeholder = presetEncoding(create(schema), bytes);
  precodedBytes.set(placeholder, bytes);
  return placeholder;
}

/** The bytes of a {@link precodedResponse} placeholder; undefined for any other value (the HTTP port's interceptor asks). */
export function precodedBytesOf(response: unknown): Uint8Array | undefined {
  return typeof response === "object" && response !== null ? precodedBytes.get(response) : undefined;
}
