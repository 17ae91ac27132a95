import { createGrpcTransport } from "@connectrpc/connect-node";
import { describeSymbol, fetchReflectedRegistry } from "../../reflection-client.js";
import { clientFlagsHelp, parseClientArgs, UsageError } from "../client-flags.js";
import type { Command } from "../command.js";

/** `latticeforge services [SYMBOL]`: what the server serves, learned through server reflection. */
export const servicesCommand: Command = {
  summary: "list served services via reflection, or describe one service, method or message",
  usage: `Usage: latticeforge services [SYMBOL]\n\n${clientFlagsHelp}`,
  async run(args) {
    const cli = parseClientArgs(args);
    if (cli.values.help === true) {
      process.stdout.write(this.usage + "\n");
      return 0;
    }
    if (cli.positionals.length > 1) throw new UsageError("expected at most one SYMBOL");
    const transport = createGrpcTransport({ baseUrl: cli.baseUrl });
    const { services, registry } = await fetchReflectedRegistry(transport, { timeoutMs: cli.timeoutMs });
    const symbol = cli.positionals[0];
    if (symbol !== undefined) {
      cli.output.line(describeSymbol(registry, symbol), { symbol, description: describeSymbol(registry, symbol) });
      return 0;
    }
    const rows = services.map((name) => {
      const service = registry.getService(name);
      return [name, service === undefined ? "" : service.methods.map((m) => m.name).join(", ")];
    });
    cli.output.table(["service", "methods"], rows, services.map((name, i) => ({ name, methods: rows[i]?.[1]?.split(", ") ?? [] })));
    return 0;
  },
};
