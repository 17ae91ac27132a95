import {
  create,
  fromJson,
  toBinary,
  toJsonString,
  type DescMessage,
  type JsonValue,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  ExportTraceServiceRequestSchema,
  ExportTraceServiceResponseSchema,
  type ExportTraceServiceRequest,
  type ExportTraceServiceResponse,
} from "../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js";
import { UnavailableError } from "../core/errors.js";
import type { Logger } from "../observability/logger.js";
import { UndecodableRequestError, type RequestDecoder } from "../rpc/offloaded-decoding.js";
import { otlpExportSpec } from "../rpc/offload-specs.js";
import { spansFromExportRequest, type OtlpMappingResult } from "../rpc/otlp-mapping.js";
import { exportMapped, type OtlpTraceOptions } from "../rpc/otlp-trace.js";
import type { IngestSpan } from "../store/tracing-codec.js";
import type { HttpRoute } from "./http-server.js";

/** Options for {@link createOtlpHttpRoutes}. */
export interface OtlpHttpOptions extends OtlpTraceOptions {
  /** Decodes and maps protobuf bodies: the decode pool (large ones off the event loop) or the inline decoder. */
  readonly decoder: RequestDecoder;
  /**
   * Largest request body in bytes, both as sent and after gzip
   * decompression; a larger one is answered 413.
   */
  readonly maxBodyBytes: number;
  /** Where a failed export's cause is logged (the caller sees a generic 503). */
  readonly logger: Logger;
}

/** The OTLP/HTTP traces path. */
export const otlpTracesPath = "/v1/traces";

/** The two OTLP/HTTP encodings, named by their content type. */
type Encoding = "application/x-protobuf" | "application/json";

type Request = IncomingMessage | Http2ServerRequest;
type Response = Parameters<HttpRoute>[1];

const decompressGzip = promisify(gunzip);

/**
 * The OTLP/HTTP routes of the HTTP port: `POST /v1/traces`, served by the
 * same mapping and `exportMapped` as the gRPC `TraceService/Export`
 * (protobuf bodies decoded by the decode workers when given).
 *
 * Per the OTLP/HTTP specification:
 * - the body is an `ExportTraceServiceRequest`, binary protobuf
 *   (`application/x-protobuf`) or OTLP/JSON (`application/json`), optionally
 *   `content-encoding: gzip`; the answer is an `ExportTraceServiceResponse`
 *   in the request's encoding, 200 also on partial success;
 * - errors are a `google.rpc.Status` in the request's encoding (JSON when the
 *   encoding is not one of the two): 405 for a method other than POST, 415
 *   for another content type or encoding, 413 over `maxBodyBytes`, 400 for a
 *   body that does not decode, and 503 (retryable) when ingestion fails;
 * - OTLP/JSON differs from protobuf's JSON mapping in trace and span ids,
 *   which are hex strings rather than base64; they are converted before
 *   decoding, and unknown fields are ignored. Enums may be names or numbers.
 */
export function createOtlpHttpRoutes(options: OtlpHttpOptions): ReadonlyMap<string, HttpRoute> {
  return new Map<string, HttpRoute>([[otlpTracesPath, (req, res) => handleTraces(req, res, options)]]);
}

/**
 * One `/v1/traces` request, in order: method, content type and encoding,
 * body (bounded, then decompressed, bounded again), decode, export.
 */
async function handleTraces(req: Request, res: Response, options: OtlpHttpOptions): Promise<void> {
  const encoding = encodingOf(req.headers["content-type"]);
  const replyEncoding = encoding ?? "application/json";
  if (req.method !== "POST") {
    req.resume();
    sendStatus(res, 405, replyEncoding, Code.Unimplemented, `method ${req.method ?? ""} is not allowed; use POST`, {
      allow: "POST",
    });
    return;
  }
  if (encoding === undefined) {
    req.resume();
    const seen = (req.headers["content-type"] ?? "none").slice(0, 100);
    const message = `content-type must be application/x-protobuf or application/json, got ${seen}`;
    sendStatus(res, 415, replyEncoding, Code.InvalidArgument, message);
    return;
  }
  const contentEncoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
  if (contentEncoding !== "identity" && contentEncoding !== "gzip") {
    req.resume();
    sendStatus(res, 415, encoding, Code.InvalidArgument, `content-encoding must be gzip or identity, got ${contentEncoding}`);
    return;
  }
  const tooLarge = `request body must be at most ${options.maxBodyBytes} bytes`;
  let body = await readBody(req, options.maxBodyBytes);
  if (body === undefined) {
    sendStatus(res, 413, encoding, Code.InvalidArgument, tooLarge);
    return;
  }
  if (contentEncoding === "gzip") {
    try {
      body = await decompressGzip(body, { maxOutputLength: options.maxBodyBytes });
    } catch (error) {
      if (isCode(error, "ERR_BUFFER_TOO_LARGE")) sendStatus(res, 413, encoding, Code.InvalidArgument, `${tooLarge} decompressed`);
      else sendStatus(res, 400, encoding, Code.InvalidArgument, "request body is not valid gzip");
      return;
    }
  }
  let response: ExportTraceServiceResponse;
  try {
    const mapped =
      encoding === "application/x-protobuf"
        ? ((await options.decoder.decode(otlpExportSpec.path, body)) as OtlpMappingResult<IngestSpan>)
        : spansFromExportRequest(decodeJsonRequest(body));
    response = await exportMapped(mapped, options);
  } catch (error) {
    if (error instanceof UndecodableRequestError) {
      sendStatus(res, 400, encoding, Code.InvalidArgument, `request body is not an ExportTraceServiceRequest: ${error.detail}`);
      return;
    }
    // Unavailable (shutdown, a failed fsync) is expected and retried; anything else is a bug or a dead decode worker.
    if (error instanceof UnavailableError) options.logger.warn({ error: error.message, path: otlpTracesPath }, "otlp/http export unavailable");
    else options.logger.error({ err: error, path: otlpTracesPath }, "otlp/http export failed");
    sendStatus(res, 503, encoding, Code.Unavailable, "trace ingestion is unavailable; retry later");
    return;
  }
  send(res, 200, encoding, ExportTraceServiceResponseSchema, response);
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

/** The OTLP encoding a content type names (parameters and case ignored), or undefined. */
function encodingOf(contentType: string | undefined): Encoding | undefined {
  const mediaType = contentType?.split(";", 1)[0]?.trim().toLowerCase();
  return mediaType === "application/x-protobuf" || mediaType === "application/json" ? mediaType : undefined;
}

/**
 * The request body, or undefined once it exceeds `maxBytes` (a declared
 * content-length says so before anything is read). Past the limit the rest
 * is read and discarded, so the client, still sending, gets to read the
 * answer.
 *
 * @throws Error when the request is closed before its end
 */
function readBody(req: Request, maxBytes: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > maxBytes) {
    req.resume();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      stop();
      req.resume();
      resolve(undefined);
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    const onClose = (): void => {
      stop();
      reject(new Error("request closed before its body was read"));
    };
    const stop = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onClose);
  });
}

/**
 * Decodes an OTLP/JSON request body.
 *
 * @throws UndecodableRequestError when the body is not the message in OTLP/JSON
 */
function decodeJsonRequest(body: Buffer): ExportTraceServiceRequest {
  try {
    const json: unknown = JSON.parse(quoteNanoTimes(body.toString("utf8")));
    hexIdsToBase64(json);
    return fromJson(ExportTraceServiceRequestSchema, json as JsonValue, { ignoreUnknownFields: true });
  } catch (error) {
    throw UndecodableRequestError.from(ExportTraceServiceRequestSchema.typeName, error);
  }
}

/**
 * Nanosecond timestamps (`startTimeUnixNano`, `endTimeUnixNano`,
 * `timeUnixNano`, in either JSON name) written as bare JSON numbers, e.g.
 * 1700000000123456789: OTLP/JSON says strings, but the protobuf JSON mapping
 * accepts numbers and some exporters send them. `JSON.parse` would round them
 * to a double (~256 ns steps today), so they are quoted in the text first.
 * Only a key in quotes, not escaped inside a string, followed by an integer.
 */
const bareNanoTime =
  /((?<!\\)"(?:startTimeUnixNano|endTimeUnixNano|timeUnixNano|start_time_unix_nano|end_time_unix_nano|time_unix_nano)"\s*:\s*)(\d+)(?=\s*[,}\]])/g;

function quoteNanoTimes(text: string): string {
  return text.replace(bareNanoTime, '$1"$2"');
}

/**
 * Rewrites, in place, the ids of parsed OTLP/JSON from hex (as OTLP/JSON
 * spells them) to base64 (as protobuf's JSON mapping reads `bytes`): span
 * `traceId`, `spanId`, `parentSpanId` and link `traceId`, `spanId`. Values
 * of unexpected shapes are left for `fromJson` to judge.
 *
 * @throws Error naming the first id that is not hex
 */
function hexIdsToBase64(json: unknown): void {
  itemsAt(json, "resourceSpans").forEach((resourceSpans, r) =>
    itemsAt(resourceSpans, "scopeSpans").forEach((scopeSpans, s) =>
      itemsAt(scopeSpans, "spans").forEach((span, i) => {
        const path = `resourceSpans[${r}].scopeSpans[${s}].spans[${i}]`;
        convertIds(span, ["traceId", "spanId", "parentSpanId"], path);
        itemsAt(span, "links").forEach((link, l) => convertIds(link, ["traceId", "spanId"], `${path}.links[${l}]`));
      }),
    ),
  );
}

/** The array at `object[key]`, or empty when there is none. */
function itemsAt(object: unknown, key: string): unknown[] {
  if (typeof object !== "object" || object === null) return [];
  const items: unknown = (object as Record<string, unknown>)[key];
  return Array.isArray(items) ? items : [];
}

const hexPattern = /^(?:[0-9a-fA-F]{2})*$/;

function convertIds(object: unknown, keys: readonly string[], path: string): void {
  if (typeof object !== "object" || object === null) return;
  const record = object as Record<string, unknown>;
  for (const key of keys) {
    const id = record[key];
    if (typeof id !== "string") continue;
    if (!hexPattern.test(id)) throw new Error(`${path}.${key} must be a hex string, got ${JSON.stringify(id.slice(0, 64))}`);
    record[key] = Buffer.from(id, "hex").toString("base64");
  }
}

/**
 * Answers with a `google.rpc.Status`, as OTLP/HTTP answers every 4xx and 5xx.
 */
function sendStatus(
  res: Response,
  httpStatus: number,
  encoding: Encoding,
  code: Code,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  send(res, httpStatus, encoding, StatusSchema, create(StatusSchema, { code, message }), headers);
}

function send<Desc extends DescMessage>(
  res: Response,
  httpStatus: number,
  encoding: Encoding,
  schema: Desc,
  message: MessageShape<Desc>,
  headers: Readonly<Record<string, string>> = {},
): void {
  const body = encoding === "application/x-protobuf" ? toBinary(schema, message) : toJsonString(schema, message);
  res.writeHead(httpStatus, { ...headers, "content-type": encoding });
  res.end(body);
}
