import { Metadata } from "@grpc/grpc-js";

/**
 * grpc-js metadata as Fetch `Headers` (the connect-es representation), for
 * both the server adapter and the grpc-js client. Binary (`-bin`) values
 * become base64, as on the wire.
 */
export function metadataToHeaders(metadata: Metadata): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) {
      headers.append(key, typeof value === "string" ? value : Buffer.from(value).toString("base64"));
    }
  }
  return headers;
}

/** Fetch headers as grpc-js metadata; `-bin` values are decoded from base64. */
export function headersToMetadata(headers: ConstructorParameters<typeof Headers>[0]): Metadata {
  const metadata = new Metadata();
  new Headers(headers).forEach((value, key) => {
    metadata.add(key, key.endsWith("-bin") ? Buffer.from(value, "base64") : value);
  });
  return metadata;
}
