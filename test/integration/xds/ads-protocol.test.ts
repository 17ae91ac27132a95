/**
 * The ADS server spoken to raw, over both ports: subscriptions, ACK, NACK,
 * stale nonces, wildcards, reconnects, ListClients and shutdown, asserted on
 * the DiscoveryResponses themselves.
 */
import { toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { AnySchema, anyPack, anyUnpack, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ClusterSchema } from "../../../gen/envoy/config/cluster/v3/cluster_pb.js";
import type { ClusterLoadAssignment } from "../../../gen/envoy/config/endpoint/v3/endpoint_pb.js";
import { ListenerSchema } from "../../../gen/envoy/config/listener/v3/listener_pb.js";
import { RouteConfigurationSchema } from "../../../gen/envoy/config/route/v3/route_pb.js";
import { AggregatedDiscoveryService } from "../../../gen/envoy/service/discovery/v3/ads_pb.js";
import type { DeltaDiscoveryRequestSchema, DiscoveryResponse } from "../../../gen/envoy/service/discovery/v3/discovery_pb.js";
import { RegistryService } from "../../../gen/latticeforge/registry/v1/registry_pb.js";
import { XdsAdminService, type ListClientsResponse, type Subscription } from "../../../gen/latticeforge/xds/v1/xds_pb.js";
import {
  buildCluster,
  buildListener,
  buildRouteConfiguration,
  resourceSchemas,
  typeUrls,
  type XdsResourceKind,
} from "../../../server/core/xds/resources.js";
import { AdsStream, RequestQueue, type DiscoveryRequestInit } from "../../fixtures/ads-stream.js";
import { startTestControlPlane, type TestControlPlane } from "../../fixtures/control-plane.js";
import { instance } from "../../fixtures/registry.js";
import { nextWithin } from "../../fixtures/streams.js";

type Transport = "grpc" | "connect";

const opts = { timeoutMs: 5000 };
const schemas = resourceSchemas;

function unpack<K extends XdsResourceKind>(kind: K, resource: Any): MessageShape<(typeof schemas)[K]> {
  expect(resource.typeUrl).toBe(typeUrls[kind]);
  const message = anyUnpack(resource, schemas[kind] as DescMessage);
  if (message === undefined) throw new Error(`cannot unpack ${resource.typeUrl} as ${kind}`);
  return message as MessageShape<(typeof schemas)[K]>;
}

/** The `ip:port` of every endpoint of an assignment, sorted. */
function addresses(assignment: ClusterLoadAssignment): string[] {
  const found: string[] = [];
  for (const locality of assignment.endpoints) {
    for (const lb of locality.lbEndpoints) {
      if (lb.hostIdentifier.case !== "endpoint") continue;
      const socket = lb.hostIdentifier.value.address?.address;
      if (socket?.case !== "socketAddress" || socket.value.portSpecifier.case !== "portValue") continue;
      found.push(`${socket.value.address}:${socket.value.portSpecifier.value}`);
    }
  }
  return found.sort();
}

/** The resource names of a response, in order. */
function names(response: DiscoveryResponse, kind: XdsResourceKind): string[] {
  return response.resources.map((resource) => {
    const message = unpack(kind, resource);
    return "clusterName" in message ? message.clusterName : message.name;
  });
}

function hex(resource: Any): string {
  return Buffer.from(toBinary(AnySchema, resource)).toString("hex");
}

const node = (id: string) => ({
  id,
  cluster: "test-cluster",
  locality: { region: "eu-west", zone: "eu-west-1a", subZone: "" },
  userAgentName: "ads-protocol-test",
  userAgentVersionType: { case: "userAgentVersion" as const, value: "0.0.1" },
});

/** A first request for `kind` (empty nonce). */
function subscribe(kind: XdsResourceKind, resourceNames: string[], extra: Partial<DiscoveryRequestInit> = {}): DiscoveryRequestInit {
  return { typeUrl: typeUrls[kind], resourceNames, ...extra };
}

/** The ACK of `response`, for the same names. */
function ack(response: DiscoveryResponse, resourceNames: string[]): DiscoveryRequestInit {
  return { typeUrl: response.typeUrl, versionInfo: response.versionInfo, responseNonce: response.nonce, resourceNames };
}

/** Polls `read` until `accept` says yes or `timeoutMs` passes; returns the last value read. */
async function eventually<T>(read: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The value of `latticeforge_xds_nacks_total{type}` in /metrics, undefined when absent. */
async function nackMetric(server: TestControlPlane, type: XdsResourceKind): Promise<number | undefined> {
  const scrape = await fetch(`${server.httpBaseUrl}/metrics`);
  const text = await scrape.text();
  expect(scrape.status, text).toBe(200);
  const match = new RegExp(`^latticeforge_xds_nacks_total\\{type="${type}"\\} (\\d+)$`, "m").exec(text);
  return match === null ? undefined : Number(match[1]);
}

/** How a stream ended after its server went away: the error's code, or "ok" for a clean end. */
async function endOf(stream: AdsStream): Promise<Code | "ok"> {
  for (let i = 0; i < 20; i++) {
    const outcome = await stream.nextResult(5000).then(
      (result) => (result.done === true ? "ok" : undefined),
      (error: unknown) => {
        if (error instanceof ConnectError) return error.code;
        throw error;
      },
    );
    if (outcome !== undefined) return outcome;
  }
  throw new Error("the stream kept sending responses");
}

describe.each(["grpc", "connect"] as const)("ADS over %s", (transport: Transport) => {
  let server: TestControlPlane;
  let registry: Client<typeof RegistryService>;
  const streams: AdsStream[] = [];
  const extraServers: TestControlPlane[] = [];

  const adsClient = (on: TestControlPlane): Client<typeof AggregatedDiscoveryService> =>
    transport === "grpc" ? on.grpc(AggregatedDiscoveryService) : on.http(AggregatedDiscoveryService, { httpVersion: "2" });
  const admin = (on: TestControlPlane = server): Client<typeof XdsAdminService> =>
    transport === "grpc" ? on.grpc(XdsAdminService) : on.http(XdsAdminService);

  function open(on: TestControlPlane = server): AdsStream {
    const stream = new AdsStream(adsClient(on));
    streams.push(stream);
    return stream;
  }

  /** A server of the test's own (fresh registry), stopped after it. */
  async function ownServer(): Promise<TestControlPlane> {
    const own = await startTestControlPlane();
    extraServers.push(own);
    return own;
  }

  async function register(serviceName: string, endpoint: string, overrides: Parameters<typeof instance>[0] = {}, on = registry) {
    return on.register({ instance: instance({ serviceName, endpoint, ...overrides }) }, opts);
  }

  /** The subscription of `kind` of the one client with `nodeId`. */
  async function subscriptionOf(nodeId: string, kind: XdsResourceKind): Promise<{ subscription: Subscription | undefined; listed: ListClientsResponse }> {
    const listed = await admin().listClients({ nodeId }, opts);
    expect(listed.clients).toHaveLength(1);
    return { subscription: listed.clients[0]!.subscriptions.find((s) => s.typeUrl === typeUrls[kind]), listed };
  }

  beforeAll(async () => {
    server = await startTestControlPlane();
    registry = server.grpc(RegistryService);
  });
  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.close();
    for (const own of extraServers.splice(0)) await own.stop();
  });
  afterAll(() => server.stop());

  it("answers an EDS subscription with the registered endpoints at the revision of the service's latest change", async () => {
    await register("eds-basic", "10.1.0.1:8080", { zone: "eu-west-1a" });
    const { revision } = await register("eds-basic", "[2001:db8::5]:8080", { zone: "eu-west-1b" });
    const stream = open();
    stream.send(subscribe("endpoint", ["eds-basic"], { node: node(`${transport}-eds-basic`) }));
    const response = await stream.next();
    expect(response.typeUrl).toBe(typeUrls.endpoint);
    expect(response.versionInfo).toBe(String(revision));
    expect(response.nonce).not.toBe("");
    expect(response.resources).toHaveLength(1);
    const assignment = unpack("endpoint", response.resources[0]!);
    expect(assignment.clusterName).toBe("eds-basic");
    expect(addresses(assignment)).toEqual(["10.1.0.1:8080", "2001:db8::5:8080"]);
    expect(assignment.endpoints.map((l) => l.locality?.zone)).toEqual(["eu-west-1a", "eu-west-1b"]);
  });

  it("answers LDS, RDS and CDS for the service with its listener, route configuration and cluster", async () => {
    const { revision } = await register("lrc-basic", "10.1.1.1:8080");
    const stream = open();
    const kinds = ["listener", "route", "cluster"] as const;
    for (const kind of kinds) stream.send(subscribe(kind, ["lrc-basic"], { node: node(`${transport}-lrc`) }));
    const responses = new Map<string, DiscoveryResponse>();
    for (let i = 0; i < kinds.length; i++) {
      const response = await stream.next();
      responses.set(response.typeUrl, response);
    }
    const expected = {
      listener: anyPack(ListenerSchema, buildListener("lrc-basic")),
      route: anyPack(RouteConfigurationSchema, buildRouteConfiguration("lrc-basic")),
      cluster: anyPack(ClusterSchema, buildCluster("lrc-basic")),
    };
    const nonces = new Set<string>();
    for (const kind of kinds) {
      const response = responses.get(typeUrls[kind]);
      expect(response, kind).toBeDefined();
      expect(response!.versionInfo).toBe(String(revision));
      expect(response!.nonce).not.toBe("");
      nonces.add(response!.nonce);
      expect(names(response!, kind)).toEqual(["lrc-basic"]);
      expect(hex(response!.resources[0]!)).toBe(hex(expected[kind]));
    }
    expect(nonces.size).toBe(3);
    await stream.expectSilence();
  });

  it("gives a client the priority of its own region in the load assignment", async () => {
    await register("eds-regions", "10.1.2.1:8080", { region: "eu-west", zone: "eu-west-1a" });
    await register("eds-regions", "10.1.2.2:8080", { region: "us-east", zone: "us-east-1a" });
    const stream = open();
    stream.send(subscribe("endpoint", ["eds-regions"], { node: { ...node(`${transport}-us`), locality: { region: "us-east", zone: "us-east-1a" } } }));
    const assignment = unpack("endpoint", (await stream.next()).resources[0]!);
    expect(assignment.endpoints.map((l) => [l.locality?.region, l.priority])).toEqual([
      ["eu-west", 1],
      ["us-east", 0],
    ]);
  });

  it("sends nothing for an ACK, pushes a change of the service, and nothing for a change elsewhere", async () => {
    const first = await register("eds-push", "10.1.3.1:8080");
    const stream = open();
    stream.send(subscribe("endpoint", ["eds-push"], { node: node(`${transport}-push`) }));
    const initial = await stream.next();
    expect(initial.versionInfo).toBe(String(first.revision));
    stream.send(ack(initial, ["eds-push"]));
    await stream.expectSilence();

    await register("eds-push-unrelated", "10.1.3.9:8080");
    await stream.expectSilence();

    const second = await register("eds-push", "10.1.3.2:8080");
    const pushed = await stream.next();
    expect(pushed.typeUrl).toBe(typeUrls.endpoint);
    expect(pushed.versionInfo).toBe(String(second.revision));
    expect(Number(pushed.versionInfo)).toBeGreaterThan(Number(initial.versionInfo));
    expect(pushed.nonce).not.toBe("");
    expect(pushed.nonce).not.toBe(initial.nonce);
    expect(addresses(unpack("endpoint", pushed.resources[0]!))).toEqual(["10.1.3.1:8080", "10.1.3.2:8080"]);
    stream.send(ack(pushed, ["eds-push"]));
    await stream.expectSilence();
  });

  it("records a NACK in ListClients, keeps the acked version, counts it in /metrics and does not resend", async () => {
    const nodeId = `${transport}-nack`;
    await register("eds-nack", "10.1.4.1:8080");
    const stream = open();
    stream.send(subscribe("endpoint", ["eds-nack"], { node: node(nodeId) }));
    const good = await stream.next();
    stream.send(ack(good, ["eds-nack"]));
    await eventually(() => subscriptionOf(nodeId, "endpoint"), ({ subscription }) => subscription?.ackedVersion === good.versionInfo);

    await register("eds-nack", "10.1.4.2:8080");
    const rejected = await stream.next();
    const nacksBefore = (await nackMetric(server, "endpoint")) ?? 0;
    stream.send({
      typeUrl: typeUrls.endpoint,
      versionInfo: good.versionInfo,
      responseNonce: rejected.nonce,
      resourceNames: ["eds-nack"],
      errorDetail: { code: Code.InvalidArgument, message: "eds-nack: endpoint rejected by the test" },
    });
    await stream.expectSilence();

    const { subscription } = await eventually(() => subscriptionOf(nodeId, "endpoint"), ({ subscription }) => subscription?.lastNack !== undefined);
    expect(subscription?.lastNack).toMatchObject({
      version: rejected.versionInfo,
      nonce: rejected.nonce,
      errorMessage: "eds-nack: endpoint rejected by the test",
    });
    expect(subscription?.lastNack?.rejectedAt).toBeDefined();
    expect(subscription?.ackedVersion).toBe(good.versionInfo);
    expect(subscription?.sentVersion).toBe(rejected.versionInfo);
    expect(subscription?.sentNonce).toBe(rejected.nonce);
    expect(await nackMetric(server, "endpoint")).toBe(nacksBefore + 1);
  });

  it("ignores a request echoing a superseded nonce", async () => {
    const nodeId = `${transport}-stale`;
    await register("eds-stale", "10.1.5.1:8080");
    const stream = open();
    stream.send(subscribe("endpoint", ["eds-stale"], { node: node(nodeId) }));
    const first = await stream.next();
    await register("eds-stale", "10.1.5.2:8080");
    const second = await stream.next();

    // An ACK of the first response, naming another service too: stale, so neither counts.
    stream.send(ack(first, ["eds-stale", "eds-stale-other"]));
    await stream.expectSilence();
    const { subscription: after } = await subscriptionOf(nodeId, "endpoint");
    expect(after).toMatchObject({ resourceNames: ["eds-stale"], ackedVersion: "", sentVersion: second.versionInfo, sentNonce: second.nonce });
    expect(after?.lastNack).toBeUndefined();

    // A NACK of it is ignored as well.
    stream.send({ ...ack(first, ["eds-stale"]), errorDetail: { code: Code.InvalidArgument, message: "stale" } });
    stream.send(ack(second, ["eds-stale"]));
    await stream.expectSilence();
    const { subscription: acked } = await eventually(() => subscriptionOf(nodeId, "endpoint"), ({ subscription }) => subscription?.ackedVersion !== "");
    expect(acked?.ackedVersion).toBe(second.versionInfo);
    expect(acked?.lastNack).toBeUndefined();
  });

  it("does not answer a request for a type it does not serve, and keeps the stream usable", async () => {
    const nodeId = `${transport}-unknown-type`;
    await register("eds-unknown", "10.1.6.1:8080");
    const stream = open();
    stream.send({ typeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", resourceNames: ["eds-unknown"], node: node(nodeId) });
    await stream.expectSilence();
    stream.send(subscribe("endpoint", ["eds-unknown"]));
    const response = await stream.next();
    expect(response.typeUrl).toBe(typeUrls.endpoint);
    expect(names(response, "endpoint")).toEqual(["eds-unknown"]);
    const { listed } = await subscriptionOf(nodeId, "endpoint");
    expect(listed.clients[0]!.subscriptions.map((s) => s.typeUrl)).toEqual([typeUrls.endpoint]);
  });

  it("answers only the valid service names of a subscription", async () => {
    await register("eds-valid", "10.1.7.1:8080");
    const stream = open();
    const invalid = ["Not Valid!", "-leading-dash", "x".repeat(64), ""];
    stream.send(subscribe("endpoint", ["eds-valid", ...invalid]));
    expect(names(await stream.next(), "endpoint")).toEqual(["eds-valid"]);
    stream.send(subscribe("cluster", [...invalid, "eds-valid"]));
    expect(names(await stream.next(), "cluster")).toEqual(["eds-valid"]);
  });

  it("answers every valid name, with an empty load assignment for a service without instances", async () => {
    const stream = open();
    stream.send(subscribe("endpoint", ["eds-nobody-yet"]));
    const response = await stream.next();
    const assignment = unpack("endpoint", response.resources[0]!);
    expect(assignment.clusterName).toBe("eds-nobody-yet");
    expect(assignment.endpoints).toEqual([]);
  });

  it("gives a reconnecting client the same version and byte-identical resources when nothing changed", async () => {
    await register("eds-reconnect", "10.1.8.1:8080", { zone: "eu-west-1a" });
    await register("eds-reconnect", "10.1.8.2:8080", { zone: "eu-west-1b" });
    const first = open();
    first.send(subscribe("endpoint", ["eds-reconnect"], { node: node(`${transport}-reconnect`) }));
    const before = await first.next();
    first.send(subscribe("cluster", ["eds-reconnect"]));
    const clusterBefore = await first.next();
    first.send(ack(before, ["eds-reconnect"]));
    first.send(ack(clusterBefore, ["eds-reconnect"]));
    await first.expectSilence();
    first.close();

    const second = open();
    second.send(subscribe("endpoint", ["eds-reconnect"], { node: node(`${transport}-reconnect`), versionInfo: before.versionInfo }));
    const after = await second.next();
    second.send(subscribe("cluster", ["eds-reconnect"], { versionInfo: clusterBefore.versionInfo }));
    const clusterAfter = await second.next();
    expect(after.versionInfo).toBe(before.versionInfo);
    expect(after.resources.map(hex)).toEqual(before.resources.map(hex));
    expect(clusterAfter.versionInfo).toBe(clusterBefore.versionInfo);
    expect(clusterAfter.resources.map(hex)).toEqual(clusterBefore.resources.map(hex));
  });

  it("lists a client's node as its first request gave it, and filters by node id", async () => {
    const stream = open();
    stream.send(
      subscribe("listener", ["ads-listed"], {
        node: {
          id: `${transport}-listed`,
          cluster: "frontends",
          locality: { region: "eu-west", zone: "eu-west-1c", subZone: "rack-3" },
          userAgentName: "envoy",
          userAgentVersionType: { case: "userAgentVersion", value: "1.30.2" },
        },
      }),
    );
    await stream.next();
    // A later request with another node does not change the stream's identity.
    stream.send(subscribe("cluster", ["ads-listed"], { node: { ...node(`${transport}-impostor`), userAgentName: "impostor" } }));
    await stream.next();

    const other = open();
    other.send(
      subscribe("listener", ["ads-listed"], {
        node: {
          id: `${transport}-listed-build`,
          userAgentName: "gRPC Node Pure JS",
          userAgentVersionType: { case: "userAgentBuildVersion", value: { version: { majorNumber: 1, minorNumber: 14, patch: 1 } } },
        },
      }),
    );
    await other.next();

    const { clients } = await admin().listClients({ nodeId: `${transport}-listed` }, opts);
    expect(clients).toHaveLength(1);
    const listed = clients[0]!;
    expect(listed).toMatchObject({
      nodeId: `${transport}-listed`,
      nodeCluster: "frontends",
      locality: { region: "eu-west", zone: "eu-west-1c", subZone: "rack-3" },
      userAgentName: "envoy",
      userAgentVersion: "1.30.2",
    });
    expect(listed.connectedAt).toBeDefined();
    expect(listed.subscriptions.map((s) => [s.typeUrl, s.resourceNames])).toEqual([
      [typeUrls.listener, ["ads-listed"]],
      [typeUrls.cluster, ["ads-listed"]],
    ]);

    const build = await admin().listClients({ nodeId: `${transport}-listed-build` }, opts);
    expect(build.clients.map((c) => [c.nodeId, c.userAgentName, c.userAgentVersion])).toEqual([
      [`${transport}-listed-build`, "gRPC Node Pure JS", "1.14.1"],
    ]);
    expect((await admin().listClients({ nodeId: `${transport}-impostor` }, opts)).clients).toEqual([]);
    const all = await admin().listClients({ nodeId: "" }, opts);
    expect(all.clients.map((c) => c.nodeId)).toEqual(expect.arrayContaining([`${transport}-listed`, `${transport}-listed-build`]));
    // The registry's revision now: what a Register answers with, unchanged by listing.
    const registered = await register("ads-listed-revision", "10.9.9.9:80");
    expect((await admin().listClients({ nodeId: "" }, opts)).revision).toBe(registered.revision);
  });

  it("answers DeltaAggregatedResources with UNIMPLEMENTED", async () => {
    const requests = new RequestQueue<MessageInitShape<typeof DeltaDiscoveryRequestSchema>>();
    requests.push({ typeUrl: typeUrls.endpoint, resourceNamesSubscribe: ["eds-delta"] });
    const responses = adsClient(server).deltaAggregatedResources(requests, { timeoutMs: 5000 })[Symbol.asyncIterator]();
    const error = await nextWithin(responses).then(
      () => undefined,
      (e: unknown) => e,
    );
    requests.end();
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unimplemented);
  });

  describe("wildcard CDS", () => {
    it("returns every registered service and pushes the new list when a service appears", async () => {
      const own = await ownServer();
      const ownRegistry = own.grpc(RegistryService);
      await register("wc-beta", "10.2.0.1:8080", {}, ownRegistry);
      const { revision } = await register("wc-alpha", "10.2.0.2:8080", {}, ownRegistry);
      const stream = open(own);
      stream.send(subscribe("cluster", [], { node: node(`${transport}-wildcard`) }));
      const first = await stream.next();
      expect(first.versionInfo).toBe(String(revision));
      expect(names(first, "cluster")).toEqual(["wc-alpha", "wc-beta"]);

      // Another instance of a known service changes no cluster.
      await register("wc-alpha", "10.2.0.3:8080", {}, ownRegistry);
      await stream.expectSilence();

      const added = await register("wc-gamma", "10.2.0.4:8080", {}, ownRegistry);
      const pushed = await stream.next();
      expect(pushed.typeUrl).toBe(typeUrls.cluster);
      expect(pushed.versionInfo).toBe(String(added.revision));
      expect(pushed.nonce).not.toBe(first.nonce);
      expect(names(pushed, "cluster")).toEqual(["wc-alpha", "wc-beta", "wc-gamma"]);
    });

    it("stays wildcard after an ACK that, like every client's, names no resources", async () => {
      const own = await ownServer();
      const ownRegistry = own.grpc(RegistryService);
      await register("wc-one", "10.2.1.1:8080", {}, ownRegistry);
      const stream = open(own);
      stream.send(subscribe("cluster", [], { node: node(`${transport}-wildcard-ack`) }));
      const first = await stream.next();
      expect(names(first, "cluster")).toEqual(["wc-one"]);
      stream.send(ack(first, []));
      await stream.expectSilence();

      await register("wc-two", "10.2.1.2:8080", {}, ownRegistry);
      const pushed = await stream.next();
      expect(names(pushed, "cluster")).toEqual(["wc-one", "wc-two"]);
    });

    it("sends a higher version, never a lower one, when a service leaves the response", async () => {
      const own = await ownServer();
      const ownRegistry = own.grpc(RegistryService);
      await register("wc-old", "10.2.2.1:8080", {}, ownRegistry);
      const newest = await register("wc-new", "10.2.2.2:8080", { instanceId: `${transport}-wc-new-1` }, ownRegistry);
      const stream = open(own);
      stream.send(subscribe("cluster", [], { node: node(`${transport}-wildcard-removal`) }));
      const first = await stream.next();
      expect(names(first, "cluster")).toEqual(["wc-new", "wc-old"]);
      expect(first.versionInfo).toBe(String(newest.revision));

      const removed = await ownRegistry.deregister({ instanceId: `${transport}-wc-new-1` }, opts);
      const pushed = await stream.next();
      expect(names(pushed, "cluster")).toEqual(["wc-old"]);
      // Other resources than before: the version must move on (README: versions "never go back").
      expect(Number(pushed.versionInfo)).toBeGreaterThan(Number(first.versionInfo));
      expect(Number(pushed.versionInfo)).toBeLessThanOrEqual(Number(removed.revision));
    });
  });

  it("answers a subscription on a registry without any change exactly once", async () => {
    const own = await ownServer();
    const stream = open(own);
    stream.send(subscribe("endpoint", ["eds-empty-registry"], { node: node(`${transport}-empty`) }));
    const response = await stream.next();
    expect(response.versionInfo).toBe("0");
    expect(unpack("endpoint", response.resources[0]!).endpoints).toEqual([]);
    await stream.expectSilence();
    stream.send(ack(response, ["eds-empty-registry"]));
    await stream.expectSilence();
  });

  it("releases a stream's session and hub watcher when the client cancels or half-closes", async () => {
    const own = await ownServer();
    await register("eds-cleanup", "10.3.1.1:8080", {}, own.grpc(RegistryService));
    const gauges = async (): Promise<[number, number]> => {
      const text = await (await fetch(`${own.httpBaseUrl}/metrics`)).text();
      const read = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1] ?? Number.NaN);
      return [read("latticeforge_xds_streams"), read("latticeforge_topology_watchers")];
    };
    const settle = async (expected: [number, number]): Promise<void> => {
      const deadline = Date.now() + 3000;
      let seen = await gauges();
      while ((seen[0] !== expected[0] || seen[1] !== expected[1]) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        seen = await gauges();
      }
      expect(seen).toEqual(expected);
    };
    await settle([0, 0]);
    const cancelled = open(own);
    const halfClosed = open(own);
    for (const [stream, id] of [[cancelled, "cancelled"], [halfClosed, "half-closed"]] as const) {
      stream.send(subscribe("endpoint", ["eds-cleanup"], { node: node(`${transport}-${id}`) }));
      await stream.next();
    }
    await settle([2, 2]);
    cancelled.close();
    await settle([1, 1]);
    halfClosed.endRequests();
    expect(await endOf(halfClosed)).toBe("ok");
    await settle([0, 0]);
  });

  it("ends an open ADS stream with UNAVAILABLE when the server shuts down", async () => {
    const own = await ownServer();
    await register("eds-shutdown", "10.3.0.1:8080", {}, own.grpc(RegistryService));
    const stream = open(own);
    stream.send(subscribe("endpoint", ["eds-shutdown"], { node: node(`${transport}-shutdown`) }));
    await stream.next();
    const shutdown = own.controlPlane.shutdown();
    expect(await endOf(stream)).toBe(Code.Unavailable);
    await shutdown;
  });
});
