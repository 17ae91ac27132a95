import { Health, HealthCheckResponse_ServingStatus } from "../../../gen/grpc/health/v1/health_pb.js";
import { clientFlagsHelp, parseClientArgs, UsageError } from "../client-flags.js";
import type { Command } from "../command.js";

/** `latticeforge health [SERVICE]`: the gRPC health status of the server or one service. */
export const healthCommand: Command = {
  summary: "serving status of the server, or of one service (--watch to follow it)",
  usage: `Usage: latticeforge health [SERVICE] [--watch]\n\n${clientFlagsHelp}\n  --watch              follow status changes until interrupted`,
  async run(args) {
    const cli = parseClientArgs(args, { watch: { type: "boolean" } });
    if (cli.values.help === true) {
      process.stdout.write(this.usage + "\n");
      return 0;
    }
    if (cli.positionals.length > 1) throw new UsageError("expected at most one SERVICE");
    const service = cli.positionals[0] ?? "";
    const conn = cli.connect();
    try {
      const health = conn.client(Health);
      if (cli.values.watch === true) {
        const controller = new AbortController();
        process.once("SIGINT", () => controller.abort());
        for await (const { status } of health.watch({ service }, { signal: controller.signal })) {
          const name = HealthCheckResponse_ServingStatus[status];
          cli.output.line(`${service || "(server)"}  ${name}`, { service, status: name });
        }
        return 0;
      }
      const { status } = await health.check({ service }, { timeoutMs: cli.timeoutMs });
      const name = HealthCheckResponse_ServingStatus[status];
      cli.output.line(`${service || "(server)"}  ${name}`, { service, status: name });
      return status === HealthCheckResponse_ServingStatus.SERVING ? 0 : 1;
    } finally {
      conn.close();
    }
  },
};
