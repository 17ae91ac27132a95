import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { ParseArgsConfig } from "node:util";
import { parseClientArgs, type ClientInvocation } from "./client-flags.js";
import type { Command } from "./command.js";

/** What {@link createServiceCommand} builds a command from. */
export interface ServiceCommandOptions<S extends DescService> {
  /** One line for the command list. */
  readonly summary: string;
  /** Full usage text, ending with the client flags' help. */
  readonly usage: string;
  /** The sub-commands' own flags, parsed on top of the client flags. */
  readonly flags: ParseArgsConfig["options"];
  /** The service whose client the sub-commands get. */
  readonly service: S;
  /**
   * Runs sub-command `sub`, resolving to the exit code; throws `UsageError`
   * for an unknown one or bad flags, lets a `ConnectError` from the call
   * propagate (main prints its code).
   */
  run(sub: string, cli: ClientInvocation, client: Client<S>): Promise<number>;
}

/**
 * A `latticeforge <command> <subcommand> [flags]` command over one gRPC
 * service: prints the usage for no sub-command (exit 2) or `--help` (exit 0),
 * parses the client flags plus `flags`, opens the connection, runs the
 * sub-command and closes the connection however it ended.
 *
 * @example
 * export const registryCommand = createServiceCommand({
 *   summary: "register, resolve, select and watch service instances",
 *   usage, flags, service: RegistryService,
 *   run: (sub, cli, registry) => runSubcommand(sub, cli, registry),
 * });
 */
export function createServiceCommand<S extends DescService>(options: ServiceCommandOptions<S>): Command {
  const { usage } = options;
  return {
    summary: options.summary,
    usage,
    async run(args) {
      const [sub, ...rest] = args;
      if (sub === undefined || sub === "--help" || sub === "-h") {
        process.stdout.write(usage + "\n");
        return sub === undefined ? 2 : 0;
      }
      const cli = parseClientArgs(rest, options.flags);
      if (cli.values.help === true) {
        process.stdout.write(usage + "\n");
        return 0;
      }
      const conn = cli.connect();
      try {
        return await options.run(sub, cli, conn.client(options.service));
      } finally {
        conn.close();
      }
    },
  };
}
