import { readFileSync } from "node:fs";

/**
 * A bad input file given on the command line: reported on stderr with exit
 * code 1 by {@link inputFailure} (a usage mistake would be exit code 2).
 */
export class InputError extends Error {}

/**
 * The JSON document in file `path`, or on stdin when `path` is `-`.
 *
 * @throws InputError "cannot read PATH: …" or "PATH: not JSON: …"
 */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (error) {
    throw new InputError(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new InputError(`${path}: not JSON: ${(error as Error).message}`);
  }
}

/**
 * Reports an {@link InputError} as `latticeforge <command>: <message>` on
 * stderr and returns exit code 1; rethrows anything else.
 *
 * @example
 * try {
 *   json = readJsonFile(path);
 * } catch (error) {
 *   return inputFailure("trace ingest", error);
 * }
 */
export function inputFailure(command: string, error: unknown): number {
  if (!(error instanceof InputError)) throw error;
  process.stderr.write(`latticeforge ${command}: ${error.message}\n`);
  return 1;
}
