import { createContextValues, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import { createServerMetrics } from "../../../server/observability/metrics.js";
import { registerService } from "../../../server/rpc/service-registration.js";
import { instrumentService } from "../../../server/transport/instrument.js";

/** Health.Check served by `check`, instrumented with a logger that records every line. */
function instrumented(check: () => never | object) {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  const registration = instrumentService(
    registerService(Health, { check, list: () => ({ statuses: {} }), async *watch() {} }),
    { metrics: createServerMetrics(), logger, shutdownSignal: new AbortController().signal },
  );
  const call = (headers: Record<string, string>): unknown => {
    const ctx: HandlerContext = createHandlerContext({
      service: Health,
      method: Health.method.check,
      protocolName: "grpc",
      requestMethod: "POST",
      url: "http://localhost/grpc.health.v1.Health/Check",
      requestHeader: headers,
      contextValues: createContextValues(),
    });
    const impl = registration.impl as unknown as Record<string, (input: object, ctx: HandlerContext) => unknown>;
    return impl.check!({ service: "" }, ctx);
  };
  return { lines, call };
}

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

describe("the server propagates the caller's trace context into its logs", () => {
  it("adds trace_id, span_id and trace_flags to the line of a failed call", () => {
    const { lines, call } = instrumented(() => {
      throw new Error("boom");
    });
    expect(() => call({ traceparent })).toThrow();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: "rpc failed: handler error",
      trace_id: "0af7651916cd43dd8448eb211c80319c",
      span_id: "b7ad6b7169203331",
      trace_flags: "01",
    });
  });

  it("adds them to the debug line of a successful call", () => {
    const { lines, call } = instrumented(() => ({ status: 1 }));
    call({ traceparent, tracestate: "congo=t61rcWkgMzE" });
    expect(lines[0]).toMatchObject({ msg: "rpc", code: "OK", trace_id: "0af7651916cd43dd8448eb211c80319c" });
  });

  it.each([
    ["no traceparent", {}],
    ["an invalid traceparent (version ff)", { traceparent: traceparent.replace(/^00/, "ff") }],
  ])("adds none for %s", (_, headers) => {
    const { lines, call } = instrumented(() => ({ status: 1 }));
    call(headers);
    expect(lines[0]).toMatchObject({ msg: "rpc" });
    expect(lines[0]).not.toHaveProperty("trace_id");
  });
});
