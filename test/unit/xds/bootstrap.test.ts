import { validateBootstrapConfig } from "@grpc/grpc-js-xds/build/src/xds-bootstrap.js";
import { describe, expect, it } from "vitest";
import {
  buildXdsBootstrap,
  checkXdsBootstrap,
  XdsBootstrapError,
  type XdsBootstrapOptions,
} from "../../../client/xds-bootstrap.js";

/** What @grpc/grpc-js-xds says of a bootstrap: undefined when it accepts it, else its error message. */
function grpcRejection(bootstrap: unknown): string | undefined {
  try {
    // The client reads the bootstrap from JSON (a file or an environment variable).
    validateBootstrapConfig(JSON.parse(JSON.stringify(bootstrap)));
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** A bootstrap both checkers accept, as plain JSON to mutate. */
function valid(): Record<string, any> {
  return {
    xds_servers: [{ server_uri: "127.0.0.1:50051", channel_creds: [{ type: "insecure" }], server_features: ["xds_v3"] }],
    node: { id: "node-1", locality: { region: "eu-west", zone: "eu-west-1a" } },
  };
}

function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error, got none");
}

describe("buildXdsBootstrap", () => {
  it.each<[string, XdsBootstrapOptions]>([
    ["the minimum", { serverUri: "127.0.0.1:50051", nodeId: "n1" }],
    ["a cluster and a full locality", { serverUri: "127.0.0.1:50051", nodeId: "n1", cluster: "web", locality: { region: "eu-west", zone: "eu-west-1a", subZone: "rack-7" } }],
    ["a locality without sub-zone", { serverUri: "10.1.2.3:443", nodeId: "n1", locality: { region: "eu-west", zone: "eu-west-1b" } }],
    ["an IPv6 server", { serverUri: "[::1]:50051", nodeId: "n1" }],
    ["a DNS server name", { serverUri: "control-plane.internal:50051", nodeId: "n1" }],
    ["google_default credentials", { serverUri: "127.0.0.1:50051", nodeId: "n1", channelCreds: "google_default" }],
    ["insecure credentials", { serverUri: "127.0.0.1:50051", nodeId: "n1", channelCreds: "insecure" }],
  ])("builds a bootstrap @grpc/grpc-js-xds accepts, with %s", (_, options) => {
    const bootstrap = buildXdsBootstrap(options);
    expect(grpcRejection(bootstrap)).toBeUndefined();
    expect(checkXdsBootstrap(bootstrap)).toEqual([]);
    const info = validateBootstrapConfig(JSON.parse(JSON.stringify(bootstrap)));
    expect(info.xdsServers).toHaveLength(1);
    expect(info.xdsServers[0]!.server_uri).toBe(options.serverUri);
    expect(info.xdsServers[0]!.channel_creds.map((c) => c.type)).toEqual([options.channelCreds ?? "insecure"]);
    expect(info.node.id).toBe(options.nodeId);
    expect(info.node.cluster).toBe(options.cluster);
    expect(info.node.locality).toEqual(
      options.locality === undefined
        ? {}
        : {
            region: options.locality.region,
            zone: options.locality.zone,
            ...(options.locality.subZone !== undefined ? { sub_zone: options.locality.subZone } : {}),
          },
    );
  });

  it("asks for xDS v3 and ignore_resource_deletion", () => {
    const bootstrap = buildXdsBootstrap({ serverUri: "127.0.0.1:50051", nodeId: "n1" });
    expect(bootstrap.xds_servers[0]!.server_features).toEqual(expect.arrayContaining(["xds_v3", "ignore_resource_deletion"]));
  });

  it.each<[string, XdsBootstrapOptions, string]>([
    ["an empty node id", { serverUri: "127.0.0.1:50051", nodeId: "" }, "node.id"],
    ["a server without a port", { serverUri: "127.0.0.1", nodeId: "n1" }, "xds_servers[0].server_uri"],
    ["a server URL", { serverUri: "http://127.0.0.1:50051", nodeId: "n1" }, "xds_servers[0].server_uri"],
    ["an empty server", { serverUri: "", nodeId: "n1" }, "xds_servers[0].server_uri"],
  ])("refuses %s with an XdsBootstrapError naming the field", (_, options, field) => {
    const error = thrownBy(() => buildXdsBootstrap(options));
    expect(error).toBeInstanceOf(XdsBootstrapError);
    expect(error.message).toContain(field);
  });
});

describe("checkXdsBootstrap", () => {
  it("accepts a valid bootstrap", () => {
    expect(grpcRejection(valid())).toBeUndefined();
    expect(checkXdsBootstrap(valid())).toEqual([]);
  });

  it.each([null, undefined, "bootstrap", 42, []])("finds problems in %j, which is no bootstrap object", (value) => {
    expect(checkXdsBootstrap(value).length).toBeGreaterThan(0);
  });

  // Each of these is rejected by @grpc/grpc-js-xds itself (asserted first), so
  // a bootstrap checkXdsBootstrap passes never fails in the client.
  it.each<[string, (b: Record<string, any>) => void, string]>([
    ["a missing node", (b) => delete b.node, "node"],
    ["a missing node.id", (b) => delete b.node.id, "node.id"],
    ["a non-string node.id", (b) => (b.node.id = 7), "node.id"],
    ["a missing node.locality", (b) => delete b.node.locality, "node.locality"],
    ["a null node.locality", (b) => (b.node.locality = null), "node.locality"],
    ["a non-string node.locality.region", (b) => (b.node.locality.region = 1), "node.locality.region"],
    ["a non-string node.locality.sub_zone", (b) => (b.node.locality.sub_zone = false), "node.locality.sub_zone"],
    ["missing xds_servers", (b) => delete b.xds_servers, "xds_servers"],
    ["unsupported channel_creds", (b) => (b.xds_servers[0].channel_creds = [{ type: "tls" }]), "xds_servers[0].channel_creds"],
    ["empty channel_creds", (b) => (b.xds_servers[0].channel_creds = []), "xds_servers[0].channel_creds"],
    ["missing channel_creds", (b) => delete b.xds_servers[0].channel_creds, "xds_servers[0].channel_creds"],
    ["a missing server_uri", (b) => delete b.xds_servers[0].server_uri, "xds_servers[0].server_uri"],
  ])("flags %s, as @grpc/grpc-js-xds does, naming the field", (_, mutate, field) => {
    const bootstrap = valid();
    mutate(bootstrap);
    expect(grpcRejection(bootstrap)).toBeDefined();
    const problems = checkXdsBootstrap(bootstrap);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("; ")).toContain(field);
  });

  // Stricter than @grpc/grpc-js-xds, which accepts these and fails later (no server to
  // connect to; a client nobody can tell apart in ListClients).
  it.each<[string, (b: Record<string, any>) => void, string]>([
    ["empty xds_servers", (b) => (b.xds_servers = []), "xds_servers"],
    ["an empty node.id", (b) => (b.node.id = ""), "node.id"],
  ])("flags %s, naming the field", (_, mutate, field) => {
    const bootstrap = valid();
    mutate(bootstrap);
    const problems = checkXdsBootstrap(bootstrap);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("; ")).toContain(field);
  });

  it("names every problem of a bootstrap with several", () => {
    const problems = checkXdsBootstrap({ xds_servers: [], node: { locality: "eu" } });
    expect(problems.join("; ")).toContain("xds_servers");
    expect(problems.join("; ")).toContain("node.id");
    expect(problems.join("; ")).toContain("node.locality");
  });

  // The documented contract: empty only when the bootstrap is usable, i.e. the
  // client's own validator accepts it. These pass the listed checks but not the client's.
  it.each<[string, (b: Record<string, any>) => void]>([
    ["a channel_creds entry without a type next to a supported one", (b) => b.xds_servers[0].channel_creds.push({})],
    ["a channel_creds config that is not an object", (b) => (b.xds_servers[0].channel_creds[0].config = 5)],
    ["a non-string node.cluster", (b) => (b.node.cluster = 5)],
    ["server_features that is not an array", (b) => (b.xds_servers[0].server_features = "xds_v3")],
  ])("flags %s, which @grpc/grpc-js-xds rejects", (_, mutate) => {
    const bootstrap = valid();
    mutate(bootstrap);
    expect(grpcRejection(bootstrap)).toBeDefined();
    expect(checkXdsBootstrap(bootstrap)).not.toEqual([]);
  });
});
