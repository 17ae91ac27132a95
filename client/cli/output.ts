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
      for (const line of alignTable(columns, rows)) write(line);
    },
    line(text, value) {
      if (!json) write(text);
      else if (value !== undefined) write(JSON.stringify(value, null, 2));
    },
  };
}

/**
 * The lines of a table as {@link Output.table} prints it: upper-case
 * headings, cells padded to their column's width, two spaces between
 * columns, the last column unpadded. For commands that print a table inside
 * a longer text.
 */
export function alignTable(columns: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? "").length)));
  const format = (cells: readonly string[]): string =>
    cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ");
  return [format(columns.map((c) => c.toUpperCase())), ...rows.map(format)];
}
