import { describe, expect, it } from "vitest";
import { InvalidFieldError } from "../../../server/core/errors.js";
import { resolveLimit } from "../../../server/core/request-limits.js";

describe("resolveLimit", () => {
  it.each([
    [undefined, 50],
    [0, 50],
    [1, 1],
    [1000, 1000],
  ])("reads %s as %s", (value, expected) => {
    expect(resolveLimit(value, 50, 1000, "limit")).toBe(expected);
  });

  it.each([-1, 1001, 2.5, Number.NaN])("rejects %s naming the field, its range and its default", (value) => {
    let error: unknown;
    try {
      resolveLimit(value, 50, 1000, "batch_size");
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(InvalidFieldError);
    expect((error as Error).message).toBe(`batch_size must be an integer in 1..1000 (0 for 50), got ${value}`);
  });
});
