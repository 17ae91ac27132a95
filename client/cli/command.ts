/** One `latticeforge` sub-command. */
export interface Command {
  /** One line for the command list. */
  readonly summary: string;
  /** Usage text printed with --help or after a usage error. */
  readonly usage: string;
  /** Runs the command; resolves to the exit code. */
  run(args: readonly string[]): Promise<number>;
}
