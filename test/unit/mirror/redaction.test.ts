import { describe, expect, it } from "vitest";
import { redactHeaders, redactRequest, redactedValue } from "../../../server/core/mirror/redaction.js";
import { mirroredRequest } from "./builders.js";

describe("redactHeaders", () => {
  it.each<[string, Record<string, string>, string[], Record<string, string>]>([
    [
      "every default sensitive header",
      { authorization: "Bearer t", cookie: "s=1", "set-cookie": "s=2", "proxy-authorization": "Basic x", "x-api-key": "k", accept: "*/*" },
      [],
      { authorization: redactedValue, cookie: redactedValue, "set-cookie": redactedValue, "proxy-authorization": redactedValue, "x-api-key": redactedValue, accept: "*/*" },
    ],
    ["names in any case", { Authorization: "Bearer t", COOKIE: "s=1" }, [], { Authorization: redactedValue, COOKIE: redactedValue }],
    ["a configured header, configured in another case", { "x-session": "abc", "x-other": "1" }, ["X-Session"], { "x-session": redactedValue, "x-other": "1" }],
    ["tracing headers are kept", { traceparent: "00-a-b-01", tracestate: "k=v" }, [], { traceparent: "00-a-b-01", tracestate: "k=v" }],
    ["an empty value is still replaced", { authorization: "" }, [], { authorization: redactedValue }],
  ])("redacts %s", (_, headers, extra, expected) => {
    expect(redactHeaders(headers, extra)).toEqual(expected);
  });

  it("returns the same object when nothing is sensitive, and never edits its input", () => {
    const clean = { accept: "*/*" };
    expect(redactHeaders(clean)).toBe(clean);
    const dirty = { authorization: "Bearer t" };
    redactHeaders(dirty);
    expect(dirty.authorization).toBe("Bearer t");
  });

  it("redacts by each mirror's own list when several lists take turns", () => {
    const headers = { "x-a": "1", "x-b": "2" };
    const first = ["x-a"];
    const second = ["X-B"];
    for (let round = 0; round < 2; round++) {
      expect(redactHeaders(headers, first)).toEqual({ "x-a": redactedValue, "x-b": "2" });
      expect(redactHeaders(headers, second)).toEqual({ "x-a": "1", "x-b": redactedValue });
      expect(redactHeaders(headers)).toBe(headers);
    }
  });

  it("redacts a request's headers for a mirror, keeping everything else", () => {
    const request = mirroredRequest({ headers: { cookie: "s=1", "x-tenant": "t1" } });
    const redacted = redactRequest(request, ["x-tenant"]);
    expect(redacted).toEqual({ ...request, headers: { cookie: redactedValue, "x-tenant": redactedValue } });
    const clean = mirroredRequest({ headers: { accept: "*/*" } });
    expect(redactRequest(clean)).toBe(clean);
  });
});
