import type { Client } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ClusterSchema } from "../../../gen/envoy/config/cluster/v3/cluster_pb.js";
import { ClusterLoadAssignmentSchema } from "../../../gen/envoy/config/endpoint/v3/endpoint_pb.js";
import { ListenerSchema } from "../../../gen/envoy/config/listener/v3/listener_pb.js";
import { RouteConfigurationSchema } from "../../../gen/envoy/config/route/v3/route_pb.js";
import { ListClientsResponseSchema, XdsAdminService, type Subscription } from "../../../gen/latticeforge/xds/v1/xds_pb.js";
import { buildXdsBootstrap, XdsBootstrapError, type XdsChannelCreds } from "../../xds-bootstrap.js";
import { clientFlagsHelp, UsageError, type ClientInvocation } from "../client-flags.js";
import type { Command } from "../command.js";
import { requiredFlag } from "../flag-values.js";
import { createServiceCommand } from "../service-command.js";

const usage = `Usage: latticeforge xds <subcommand> [flags]

Subcommands:
  clients [--node-id ID]
      connected xDS clients: node, locality, user agent, and per resource type
      the names subscribed, the version sent and ACKed, and the last NACK
  bootstrap --node-id ID [--locality REGION/ZONE[/SUB_ZONE]] [--cluster C] [--channel-creds insecure|google_default]
      print a checked bootstrap JSON for GRPC_XDS_BOOTSTRAP (a file) or
      GRPC_XDS_BOOTSTRAP_CONFIG (the text) pointing at --addr

${clientFlagsHelp}`;

const flags = {
  "node-id": { type: "string" },
  locality: { type: "string" },
  cluster: { type: "string" },
  "channel-creds": { type: "string" },
} as const;

/** Short names of the four resource types by type URL, as `xds clients` prints them. */
const typeNames = new Map(
  ([[ListenerSchema, "LDS"], [RouteConfigurationSchema, "RDS"], [ClusterSchema, "CDS"], [ClusterLoadAssignmentSchema, "EDS"]] as const).map(
    ([schema, name]) => [`type.googleapis.com/${schema.typeName}`, name],
  ),
);

function parseLocality(text: string): { region: string; zone: string; subZone?: string } {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new UsageError(`--locality must be REGION/ZONE or REGION/ZONE/SUB_ZONE, got "${text}"`);
  }
  const [region, zone, subZone] = parts as [string, string, string | undefined];
  return { region, zone, ...(subZone !== undefined ? { subZone } : {}) };
}

function channelCreds(value: string | undefined): XdsChannelCreds {
  if (value === undefined || value === "insecure" || value === "google_default") return value ?? "insecure";
  throw new UsageError(`--channel-creds must be insecure or google_default, got "${value}"`);
}

function subscriptionCells(s: Subscription): string[] {
  const nack = s.lastNack !== undefined ? `v${s.lastNack.version}: ${s.lastNack.errorMessage}` : "";
  return [typeNames.get(s.typeUrl) ?? s.typeUrl, s.wildcard ? "*" : s.resourceNames.join(","), s.sentVersion, s.ackedVersion, nack];
}

/** `latticeforge xds …`: connected xDS clients, and bootstrap files for new ones. */
export const xdsCommand: Command = createServiceCommand({
  summary: "connected xDS clients (CSDS-like) and bootstrap files for gRPC xDS clients",
  usage,
  flags,
  service: XdsAdminService,
  run: runSubcommand,
});

async function runSubcommand(sub: string, cli: ClientInvocation, admin: Client<typeof XdsAdminService>): Promise<number> {
  switch (sub) {
    case "clients": {
      const nodeId = (cli.values["node-id"] as string | undefined) ?? "";
      const res = await admin.listClients({ nodeId }, { timeoutMs: cli.timeoutMs });
      const rows: string[][] = [];
      for (const client of res.clients) {
        const locality = [client.locality?.region, client.locality?.zone, client.locality?.subZone].filter((p) => p).join("/");
        const agent = `${client.userAgentName} ${client.userAgentVersion}`.trim();
        const since = client.connectedAt !== undefined ? timestampDate(client.connectedAt).toISOString() : "";
        const head = [client.nodeId || "(no node yet)", locality, agent, since];
        if (client.subscriptions.length === 0) rows.push([...head, "", "", "", "", ""]);
        for (const subscription of client.subscriptions) rows.push([...head, ...subscriptionCells(subscription)]);
      }
      cli.output.table(
        ["node", "locality", "agent", "connected", "type", "names", "sent", "acked", "last nack"],
        rows,
        toJson(ListClientsResponseSchema, res),
      );
      if (res.clients.length === 0 && nodeId !== "") {
        process.stderr.write(`no connected xDS client with node id "${nodeId}" (revision ${res.revision})\n`);
        return 1;
      }
      return 0;
    }
    case "bootstrap": {
      const locality = cli.values.locality as string | undefined;
      const cluster = cli.values.cluster as string | undefined;
      try {
        const bootstrap = buildXdsBootstrap({
          serverUri: cli.address,
          nodeId: requiredFlag(cli, "node-id"),
          ...(cluster !== undefined ? { cluster } : {}),
          ...(locality !== undefined ? { locality: parseLocality(locality) } : {}),
          channelCreds: channelCreds(cli.values["channel-creds"] as string | undefined),
        });
        process.stdout.write(JSON.stringify(bootstrap, null, 2) + "\n");
        return 0;
      } catch (error) {
        if (error instanceof XdsBootstrapError) throw new UsageError(`invalid bootstrap: ${error.message}`);
        throw error;
      }
    }
    default:
      throw new UsageError(`unknown subcommand "${sub}"`);
  }
}
