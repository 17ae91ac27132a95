/**
 * xDS bootstrap files for gRPC clients (`GRPC_XDS_BOOTSTRAP` or
 * `GRPC_XDS_BOOTSTRAP_CONFIG`) pointed at a LatticeForge control plane.
 *
 * A malformed bootstrap makes @grpc/grpc-js-xds fail far from the cause
 * (an unrelated TypeError on the first call), so {@link buildXdsBootstrap}
 * checks what it produces against the rules those clients enforce.
 */

/** Channel credentials gRPC xDS clients accept for the control-plane connection. */
export type XdsChannelCreds = "insecure" | "google_default";

/** What a bootstrap says. */
export interface XdsBootstrapOptions {
  /** The control plane's gRPC address, `host:port`. */
  readonly serverUri: string;
  /** The client's node id: how ListClients and logs name it. Required by gRPC clients. */
  readonly nodeId: string;
  /** The node's cluster (Envoy's service cluster); optional. */
  readonly cluster?: string;
  /** Where the client runs; its region gets priority in load assignments. */
  readonly locality?: { readonly region: string; readonly zone: string; readonly subZone?: string };
  readonly channelCreds?: XdsChannelCreds;
}

/** The JSON shape of a gRPC xDS bootstrap (the fields we write). */
export interface XdsBootstrap {
  readonly xds_servers: {
    readonly server_uri: string;
    readonly channel_creds: { readonly type: string }[];
    readonly server_features: string[];
  }[];
  readonly node: {
    readonly id: string;
    readonly cluster?: string;
    readonly locality: { readonly region?: string; readonly zone?: string; readonly sub_zone?: string };
  };
}

/** A bootstrap that gRPC's xDS clients would reject; the message names the field. */
export class XdsBootstrapError extends Error {}

/**
 * Builds a bootstrap for one client. It asks for xDS v3 and
 * `ignore_resource_deletion`, so a client keeps its listeners and clusters
 * even if a response ever omits one.
 *
 * @throws XdsBootstrapError when the result would be rejected (empty node id,
 *   address without a port, ...)
 */
export function buildXdsBootstrap(options: XdsBootstrapOptions): XdsBootstrap {
  const { locality } = options;
  const bootstrap: XdsBootstrap = {
    xds_servers: [
      {
        server_uri: options.serverUri,
        channel_creds: [{ type: options.channelCreds ?? "insecure" }],
        server_features: ["xds_v3", "ignore_resource_deletion"],
      },
    ],
    node: {
      id: options.nodeId,
      ...(options.cluster !== undefined ? { cluster: options.cluster } : {}),
      locality:
        locality === undefined
          ? {}
          : { region: locality.region, zone: locality.zone, ...(locality.subZone !== undefined ? { sub_zone: locality.subZone } : {}) },
    },
  };
  const problems = checkXdsBootstrap(bootstrap);
  if (problems.length > 0) throw new XdsBootstrapError(problems.join("; "));
  return bootstrap;
}

const supportedCreds = new Set<string>(["insecure", "google_default"]);

/**
 * What gRPC's xDS clients would reject in `value`, as messages naming the
 * field; empty when it is usable. Checks the rules @grpc/grpc-js-xds
 * enforces for the fields written here (node id, cluster and locality; at
 * least one server with a `host:port` URI, well-formed channel credentials
 * of a supported type, string server features) plus a non-empty node id.
 */
export function checkXdsBootstrap(value: unknown): string[] {
  const problems: string[] = [];
  if (typeof value !== "object" || value === null) return ["bootstrap must be a JSON object"];
  const { xds_servers: servers, node } = value as { xds_servers?: unknown; node?: unknown };
  if (!Array.isArray(servers) || servers.length === 0) problems.push("xds_servers must be a non-empty array");
  else {
    servers.forEach((server: unknown, index) => {
      const prefix = `xds_servers[${index}]`;
      if (typeof server !== "object" || server === null) {
        problems.push(`${prefix} must be an object`);
        return;
      }
      const { server_uri: uri, channel_creds: creds, server_features: features } = server as Record<string, unknown>;
      const port = typeof uri === "string" ? /^(?:\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(uri)?.[1] : undefined;
      if (port === undefined || Number(port) < 1 || Number(port) > 65_535) {
        problems.push(`${prefix}.server_uri must be host:port with a port in 1..65535, got ${JSON.stringify(uri)}`);
      }
      if (!Array.isArray(creds)) problems.push(`${prefix}.channel_creds must be an array`);
      else {
        creds.forEach((cred: unknown, i) => {
          const { type, config } = (typeof cred === "object" && cred !== null ? cred : {}) as Record<string, unknown>;
          if (typeof type !== "string") problems.push(`${prefix}.channel_creds[${i}].type must be a string`);
          if (config !== undefined && (typeof config !== "object" || config === null || Array.isArray(config))) {
            problems.push(`${prefix}.channel_creds[${i}].config must be an object`);
          }
        });
        if (!creds.some((c: unknown) => supportedCreds.has((c as { type?: unknown } | null)?.type as string))) {
          problems.push(`${prefix}.channel_creds must include a type in [${[...supportedCreds].join(", ")}]`);
        }
      }
      if (features !== undefined && (!Array.isArray(features) || features.some((f) => typeof f !== "string"))) {
        problems.push(`${prefix}.server_features must be an array of strings`);
      }
    });
  }
  if (typeof node !== "object" || node === null) problems.push("node must be an object");
  else {
    const { id, cluster, locality } = node as { id?: unknown; cluster?: unknown; locality?: unknown };
    if (typeof id !== "string" || id === "") problems.push("node.id must be a non-empty string");
    if (cluster !== undefined && typeof cluster !== "string") problems.push("node.cluster must be a string");
    if (typeof locality !== "object" || locality === null) problems.push("node.locality must be an object");
    else {
      for (const key of ["region", "zone", "sub_zone"]) {
        const field = (locality as Record<string, unknown>)[key];
        if (field !== undefined && typeof field !== "string") problems.push(`node.locality.${key} must be a string`);
      }
    }
  }
  return problems;
}
