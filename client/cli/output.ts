/** How a client command prints its result. */
export interface Output {
  /** Print `rows` as an aligned table under `columns`, or as JSON with --json. */
  table(columns: readonly string[], rows: readonly (readonly string[])[], json: unknown): void;
  /** Print one line of text, or `json` with --json (nothing when `json` is undefined). */
  line(text: string, json: unknown): void;
}

/** Output to stdout: readable tables by default, one JSON document per result with `json`. */
export function createOutput(json: boolean): Output {
  const write = (text: string): void => {
    process.stdout.write(text + "\n");
  };
  return {
    table(columns, rows, value) {
      if (json) return write(JSON.stringify(value, null, 2));
      const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? "").length)));
      const format = (cells: readonly string[]): string =>
        cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ");
      write(format(columns.map((c) => c.toUpperCase())));
      for (const row of rows) write(format(row));
    },
    line(text, value) {
      if (!json) write(text);
      else if (value !== undefined) write(JSON.stringify(value, null, 2));
    },
  };
}
