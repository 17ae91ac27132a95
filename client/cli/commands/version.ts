import { readFileSync } from "node:fs";
import type { Command } from "../command.js";

/** The version in the project's package.json, found by walking up from this file. */
function packageVersion(): string {
  for (let dir = new URL(".", import.meta.url); dir.pathname !== "/"; dir = new URL("..", dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "latticeforge") return pkg.version ?? "unknown";
    } catch {
      // not here; keep walking up
    }
  }
  return "unknown";
}

/** `latticeforge version`: this build's version and runtime. */
export const versionCommand: Command = {
  summary: "print the version",
  usage: "Usage: latticeforge version [--json]",
  async run(args) {
    const version = packageVersion();
    if (args.includes("--json")) process.stdout.write(JSON.stringify({ version, node: process.version }) + "\n");
    else process.stdout.write(`latticeforge ${version} (node ${process.version})\n`);
    return 0;
  },
};
