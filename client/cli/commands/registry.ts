import type { Client } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  DeregisterResponseSchema,
  HeartbeatResponseSchema,
  RegisterResponseSchema,
  RegistryService,
  RemovalReason,
  ResolveResponseSchema,
  SelectInstanceResponseSchema,
  ServiceTopologyResponseSchema,
  StaleInstancesResponseSchema,
  WatchTopologyResponseSchema,
  SelectionStrategy,
  TopologyEventType,
  type InstanceState,
} from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { clientFlagsHelp, UsageError, type ClientInvocation } from "../client-flags.js";
import type { Command } from "../command.js";
import { integerFlag, requiredFlag } from "../flag-values.js";
import { runRevisionWatch } from "../revision-watch.js";
import { createServiceCommand } from "../service-command.js";

const usage = `Usage: latticeforge registry <subcommand> [flags]

Subcommands:
  register --service S --id ID --endpoint HOST:PORT --region R --zone Z [--weight 1..100] [--meta k=v]...
  deregister ID
  heartbeat ID [--connections N]
  resolve SERVICE [--region R] [--all] [--min-weight N]
  select SERVICE [--region R] [--strategy weighted-random|round-robin|least-connections|power-of-two-choices]
  topology
  stale [SERVICE]
  watch [SERVICE]... [--from REVISION]   print changes live; resumes by revision after a dropped connection

${clientFlagsHelp}`;

const strategies: Record<string, SelectionStrategy> = {
  "weighted-random": SelectionStrategy.WEIGHTED_RANDOM,
  "round-robin": SelectionStrategy.ROUND_ROBIN,
  "least-connections": SelectionStrategy.LEAST_CONNECTIONS,
  "power-of-two-choices": SelectionStrategy.POWER_OF_TWO_CHOICES,
};

const flags = {
  service: { type: "string" },
  id: { type: "string" },
  endpoint: { type: "string" },
  region: { type: "string" },
  zone: { type: "string" },
  weight: { type: "string" },
  meta: { type: "string", multiple: true },
  connections: { type: "string" },
  all: { type: "boolean" },
  "min-weight": { type: "string" },
  strategy: { type: "string" },
  from: { type: "string" },
} as const;

/** Why an instance is (not) routed to: the first that applies of stale, unhealthy, degraded, warming, healthy. */
function status(state: InstanceState): string {
  if (state.stale) return "stale";
  if (!state.healthy) return "unhealthy";
  if (state.degraded) return "degraded";
  return state.warmingUp ? "warming" : "healthy";
}

/** WEIGHT is the configured weight, EFFECTIVE what selection uses now (0 when not routable), SCORE the health score. */
function row(state: InstanceState): string[] {
  const i = state.instance!;
  return [
    i.serviceName,
    i.instanceId,
    i.endpoint,
    `${i.region}/${i.zone}`,
    String(i.weight),
    String(state.effectiveWeight),
    state.healthScore.toFixed(2),
    status(state),
    String(state.activeConnections),
  ];
}

function table(cli: ClientInvocation, states: readonly InstanceState[], json: unknown): void {
  cli.output.table(
    ["service", "instance", "endpoint", "locality", "weight", "effective", "score", "status", "connections"],
    states.map(row),
    json,
  );
}

/** `latticeforge registry …`: the RegistryService from the command line. */
export const registryCommand: Command = createServiceCommand({
  summary: "register, resolve, select and watch service instances",
  usage,
  flags,
  service: RegistryService,
  run: runSubcommand,
});

async function runSubcommand(sub: string, cli: ClientInvocation, registry: Client<typeof RegistryService>): Promise<number> {
  const call = { timeoutMs: cli.timeoutMs };
  const [first] = cli.positionals;
  switch (sub) {
    case "register": {
      const metadata: Record<string, string> = {};
      for (const pair of (cli.values.meta as unknown as string[] | undefined) ?? []) {
        const eq = pair.indexOf("=");
        if (eq <= 0) throw new UsageError(`--meta must be key=value, got "${pair}"`);
        metadata[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      const res = await registry.register(
        {
          instance: {
            serviceName: requiredFlag(cli, "service"),
            instanceId: requiredFlag(cli, "id"),
            endpoint: requiredFlag(cli, "endpoint"),
            region: requiredFlag(cli, "region"),
            zone: requiredFlag(cli, "zone"),
            weight: integerFlag(cli.values.weight, "--weight", 50),
            metadata,
          },
        },
        call,
      );
      cli.output.line(`registered ${res.instance!.instance!.instanceId} at revision ${res.revision}`, toJson(RegisterResponseSchema, res));
      return 0;
    }
    case "deregister": {
      if (first === undefined) throw new UsageError("deregister needs an instance ID");
      const res = await registry.deregister({ instanceId: first }, call);
      cli.output.line(`deregistered ${first} at revision ${res.revision}`, toJson(DeregisterResponseSchema, res));
      return 0;
    }
    case "heartbeat": {
      if (first === undefined) throw new UsageError("heartbeat needs an instance ID");
      const connections = cli.values.connections;
      const res = await registry.heartbeat(
        { instanceId: first, ...(connections !== undefined ? { activeConnections: integerFlag(connections, "--connections", 0) } : {}) },
        call,
      );
      cli.output.line(`heartbeat recorded for ${first} at ${timestampDate(res.lastHeartbeat!).toISOString()}`, toJson(HeartbeatResponseSchema, res));
      return 0;
    }
    case "resolve": {
      if (first === undefined) throw new UsageError("resolve needs a SERVICE");
      const region = cli.values.region as string | undefined;
      const res = await registry.resolve(
        {
          serviceName: first,
          ...(region !== undefined ? { region } : {}),
          healthyOnly: cli.values.all !== true,
          minWeight: integerFlag(cli.values["min-weight"], "--min-weight", 0),
        },
        call,
      );
      table(cli, res.instances, toJson(ResolveResponseSchema, res));
      return 0;
    }
    case "select": {
      if (first === undefined) throw new UsageError("select needs a SERVICE");
      const name = (cli.values.strategy as string | undefined) ?? "weighted-random";
      const strategy = strategies[name];
      if (strategy === undefined) throw new UsageError(`--strategy must be one of ${Object.keys(strategies).join(", ")}`);
      const region = cli.values.region as string | undefined;
      const res = await registry.selectInstance({ serviceName: first, ...(region !== undefined ? { region } : {}), strategy }, call);
      if (res.instance === undefined) {
        cli.output.line(`no routable instance of ${first}`, toJson(SelectInstanceResponseSchema, res));
        return 1;
      }
      table(cli, [res.instance], toJson(SelectInstanceResponseSchema, res));
      return 0;
    }
    case "topology": {
      const res = await registry.serviceTopology({}, call);
      const rows: string[][] = [];
      for (const [service, { regions }] of Object.entries(res.services).sort()) {
        for (const [region, counts] of Object.entries(regions).sort()) {
          rows.push([service, region, String(counts.instances), String(counts.healthy)]);
        }
      }
      cli.output.table(["service", "region", "instances", "healthy"], rows, toJson(ServiceTopologyResponseSchema, res));
      if (res.selfPreservation && !cli.values.json) process.stdout.write("self-preservation: ON (stale evictions held back)\n");
      return 0;
    }
    case "stale": {
      const res = await registry.staleInstances({ serviceName: first ?? "" }, call);
      table(cli, res.instances, toJson(StaleInstancesResponseSchema, res));
      return 0;
    }
    case "watch":
      return watch(cli, registry);
    default:
      throw new UsageError(`unknown registry subcommand "${sub}"`);
  }
}

/** Prints changes as they happen and resumes from the last revision after a dropped stream. */
function watch(cli: ClientInvocation, registry: Client<typeof RegistryService>): Promise<number> {
  const print = (text: string, json: unknown): void => cli.output.line(text, json);
  return runRevisionWatch({
    name: "watch",
    startRevision: BigInt(integerFlag(cli.values.from, "--from", 0)),
    open: (revision, signal) => registry.watchTopology({ serviceNames: cli.positionals, startRevision: revision }, { signal }),
    onMessage(res, revision) {
      const m = res.message;
      if (m.case === "snapshot") {
        const part = m.value.more ? " (continued below)" : "";
        print(`snapshot at revision ${m.value.revision}${m.value.reset ? " (reset)" : ""}: ${m.value.instances.length} instances${part}`, toJson(WatchTopologyResponseSchema, res));
        for (const state of m.value.instances) print(`  ${row(state).join("  ")}`, undefined);
        return m.value.revision;
      }
      if (m.case === "change") {
        for (const event of m.value.events) {
          const kind = TopologyEventType[event.type];
          const reason = event.reason !== RemovalReason.UNSPECIFIED ? ` (${RemovalReason[event.reason]})` : "";
          print(`${m.value.revision}  ${kind}${reason}  ${row(event.instance!).join("  ")}`, undefined);
        }
        if (cli.values.json === true) print("", toJson(WatchTopologyResponseSchema, res));
        return m.value.revision;
      }
      if (m.case === "progress" && m.value.revision > revision) return m.value.revision;
      return revision;
    },
  });
}
