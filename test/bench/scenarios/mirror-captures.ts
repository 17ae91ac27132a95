/**
 * The captures of the mirror bench and the mirrors they land in.
 *
 * **A capture** is what a proxy would hand over for a checkout API call: a
 * `POST` with a ~500-byte JSON body (a cart of three items, shipping
 * address, payment token), seven headers — among them `authorization` and
 * `x-session-token`, which the server redacts before storing — a request id,
 * a W3C trace id (also in `traceparent`) and an intent. Dispatch captures
 * also carry production's response, so every shadow answer is diffed.
 *
 * **Mirrors**: the capture targets configure {@link captureServices} ×
 * {@link mirrorsPerService} FULL mirrors (9 of the server's 10), each
 * redacting `x-session-token` besides the defaults, with buffers of
 * {@link captureBufferSize}, and spread their captures over the three
 * services in turn, so every capture queues into exactly three mirrors while
 * each buffer takes a third of the traffic. That is what keeps a CaptureStream
 * run at ≥ 20,000 captures/s (≥ 120,000 per 6 s of warm-up and window) under
 * the server's largest buffer (100,000): a full buffer drops, which is
 * cheaper than queueing and would flatter the figure. The bench checks after
 * each run, with Stats, that nothing was dropped.
 *
 * **Requests as bytes**: each load client encodes one template per service
 * once (protobuf-es `toBinary`; a Struct payload takes tens of µs, which the
 * clients would take from the cores they share with the server at 20,000
 * captures/s) and sends, for capture `n`, a copy whose request id and trace
 * id carry `n` — both found in the template by searching for the values it
 * was built with, every occurrence (the ids are also in headers), so no
 * offset depends on knowledge of the wire format.
 */
import { create, fromJson, toBinary, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  CaptureRequestSchema,
  CaptureStreamRequestSchema,
  MirrorMode,
  type CaptureRequest,
  type MirrorConfigSchema,
} from "../../../gen/latticeforge/mirror/v1/mirror_pb.js";

/** Source services the capture targets spread their captures over, in turn. */
export const captureServices = ["checkout", "payments", "shipping"] as const;
/** Mirrors of each source service: every capture queues into this many. */
export const mirrorsPerService = 3;
/** Buffer size of every mirror: the server's largest. */
export const captureBufferSize = 100_000;
/** Headers redacted by every mirror besides the server's defaults (authorization, cookie…). */
export const redactedHeaders = ["x-session-token"];

/** Production's answer to a capture of the dispatch target; the shadow answers the same but for `build`. */
export const productionResponse = { status: "accepted", orderId: "ord_5f2b9c", total: 129.97, currency: "EUR", items: 3, build: "v41" };
/** What the shadow answers every request with: one field differs from {@link productionResponse}. */
export const shadowResponse = { ...productionResponse, build: "v42" };

/** Decimal digits of the capture number in request ids; hex digits of it in trace ids. */
const sequenceDigits = 12;

/** The AddMirror config of mirror `index` of `service`, sending to `endpoint` when dispatched. */
export function mirrorConfig(service: string, index: number, endpoint: string): MessageInitShape<typeof MirrorConfigSchema> {
  return {
    mirrorId: mirrorIdOf(service, index),
    sourceService: service,
    shadowEndpoint: endpoint,
    mode: MirrorMode.FULL,
    timeoutMs: 5_000,
    bufferSize: captureBufferSize,
    redactHeaders: redactedHeaders,
  };
}

/** The id of mirror `index` of `service`. */
export function mirrorIdOf(service: string, index: number): string {
  return `${service}-shadow-${index}`;
}

/** The request body of a checkout call (~500 bytes of JSON). */
const payload: JsonObject = {
  customerId: "cus_8f14e45fceea167a",
  cart: {
    items: [
      { sku: "SKU-10442", name: "Merino crew sock, charcoal", quantity: 2, unitPrice: 14.5 },
      { sku: "SKU-20931", name: "Waxed canvas tote", quantity: 1, unitPrice: 64.0 },
      { sku: "SKU-31877", name: "Enamel mug, 350 ml", quantity: 1, unitPrice: 22.0 },
    ],
    currency: "EUR",
  },
  shipping: {
    method: "standard",
    address: { line1: "Keizersgracht 123", city: "Amsterdam", postalCode: "1015 CJ", country: "NL" },
  },
  payment: { method: "card", token: "tok_1N3fG2eZvKYlo2C0", saveCard: false },
  locale: "nl-NL",
};

/**
 * Capture `sequence` of load client `client` for `service`, as a message
 * (the template of {@link CaptureTemplates}, and the bench process's own
 * captures when it prepares a Dispatch target).
 */
export function captureRequest(service: string, client: number, sequence: number, withProductionResponse: boolean): CaptureRequest {
  const requestId = `${service}-c${client}-${sequence.toString().padStart(sequenceDigits, "0")}`;
  const traceId = `4bf92f35${client.toString(16).padStart(4, "0")}77b3a6d0${sequence.toString(16).padStart(sequenceDigits, "0")}`;
  return create(CaptureRequestSchema, {
    requestId,
    traceId,
    sourceService: service,
    intent: "create_order",
    method: "POST",
    path: `/v1/${service}/orders`,
    payload,
    headers: {
      host: "shop.example.com",
      authorization: "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjdXNfOGYxNGU0NWZjZWVhMTY3YSJ9.c2lnbmF0dXJl",
      "content-type": "application/json",
      "user-agent": "shop-web/4.12.0",
      "x-request-id": requestId,
      "x-session-token": "sess_0c9a1d7e3b5f42e8",
      traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
    },
    ...(withProductionResponse ? { productionResponse: fromJson(ValueSchema, productionResponse) } : {}),
  });
}

/** One encoded capture and where its numbered ids sit. */
interface Template {
  readonly bytes: Uint8Array;
  /** Offsets of the request ids' decimal digits. */
  readonly decimal: readonly number[];
  /** Offsets of the trace ids' hex digits. */
  readonly hex: readonly number[];
}

/**
 * Encoded captures of one load client, one template per service, numbered
 * by rewriting their ids in a copy (see the module comment). `stream`
 * templates are `CaptureStreamRequest`s, the others `CaptureRequest`s.
 */
export class CaptureTemplates {
  private readonly templates: readonly Template[];

  constructor(client: number, stream: boolean) {
    this.templates = captureServices.map((service) => {
      const capture = captureRequest(service, client, 0, false);
      const bytes = stream ? toBinary(CaptureStreamRequestSchema, create(CaptureStreamRequestSchema, { capture })) : toBinary(CaptureRequestSchema, capture);
      const digitsOf = (id: string, digits: number): number[] => occurrences(bytes, id).map((offset) => offset + id.length - digits);
      const decimal = digitsOf(capture.requestId, sequenceDigits);
      const hex = digitsOf(capture.traceId, sequenceDigits);
      if (decimal.length !== 2 || hex.length !== 2) throw new Error(`capture template of ${service}: ids found ${decimal.length} and ${hex.length} times, expected 2 each`);
      return { bytes, decimal, hex };
    });
  }

  /** Capture `sequence`: of service `sequence mod 3`, its ids carrying `sequence`. */
  at(sequence: number): Uint8Array {
    const template = this.templates[sequence % this.templates.length] as Template;
    const bytes = template.bytes.slice();
    const decimal = sequence.toString().padStart(sequenceDigits, "0");
    const hex = sequence.toString(16).padStart(sequenceDigits, "0");
    for (const offset of template.decimal) writeAscii(bytes, offset, decimal);
    for (const offset of template.hex) writeAscii(bytes, offset, hex);
    return bytes;
  }
}

/** Every offset at which `text` (ASCII) occurs in `bytes`. */
function occurrences(bytes: Uint8Array, text: string): number[] {
  const needle = Buffer.from(text, "latin1");
  const haystack = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found: number[] = [];
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + 1)) found.push(at);
  return found;
}

function writeAscii(bytes: Uint8Array, offset: number, text: string): void {
  for (let i = 0; i < text.length; i++) bytes[offset + i] = text.charCodeAt(i);
}
