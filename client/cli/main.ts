#!/usr/bin/env node
import { Code, ConnectError } from "@connectrpc/connect";
import { runServe } from "../../server/main.js";
import { UsageError } from "./client-flags.js";
import type { Command } from "./command.js";
import { healthCommand } from "./commands/health.js";
import { mirrorCommand } from "./commands/mirror.js";
import { registryCommand } from "./commands/registry.js";
import { servicesCommand } from "./commands/services.js";
import { traceCommand } from "./commands/trace.js";
import { versionCommand } from "./commands/version.js";
import { xdsCommand } from "./commands/xds.js";

const commands: Record<string, Command> = {
  serve: {
    summary: "run the control plane (flags: latticeforge serve --help)",
    usage: "latticeforge serve [flags]",
    run: runServe,
  },
  health: healthCommand,
  mirror: mirrorCommand,
  registry: registryCommand,
  services: servicesCommand,
  trace: traceCommand,
  version: versionCommand,
  xds: xdsCommand,
};

function usage(): string {
  const lines = ["Usage: latticeforge <command> [flags]", "", "Commands:"];
  for (const [name, command] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${command.summary}`);
  lines.push("", "Run 'latticeforge <command> --help' for a command's flags.");
  return lines.join("\n");
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage() + "\n");
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`latticeforge: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`latticeforge ${name}: ${error.message}\n\n${command.usage}\n`);
      return 2;
    }
    if (error instanceof ConnectError) {
      process.stderr.write(`latticeforge ${name}: ${Code[error.code]}: ${error.rawMessage}\n`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
