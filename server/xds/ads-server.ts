import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { ClusterSchema } from "../../gen/envoy/config/cluster/v3/cluster_pb.js";
import { ClusterLoadAssignmentSchema } from "../../gen/envoy/config/endpoint/v3/endpoint_pb.js";
import { ListenerSchema } from "../../gen/envoy/config/listener/v3/listener_pb.js";
import { RouteConfigurationSchema } from "../../gen/envoy/config/route/v3/route_pb.js";
import { DiscoveryResponseSchema, type DiscoveryResponse } from "../../gen/envoy/service/discovery/v3/discovery_pb.js";
import { validateServiceName } from "../core/registry/validation.js";
import type { TopologyEvent } from "../core/registry/model.js";
import {
  buildCluster,
  buildListener,
  buildLoadAssignment,
  buildRouteConfiguration,
  typeUrls,
  type SkippedEndpoint,
  type XdsResourceKind,
} from "../core/xds/resources.js";
import { AdsStreamState, type XdsNode, type XdsRequest, type XdsSubscription } from "../core/xds/stream-state.js";
import type { Logger } from "../observability/logger.js";
import type { RegistryStore } from "../store/registry-store.js";
import type { RevisionedChange } from "../store/revision-log.js";
import { Wakeup } from "../watch/wakeup.js";
import type { WatchHub, WatchMessage } from "../watch/watch-hub.js";

/**
 * Rewrites a resource just before it is sent. Tests use it to serve a
 * resource clients must reject (NACK); production leaves it unset.
 */
export type AdjustXdsResource = (kind: XdsResourceKind, service: string, resource: Any) => Any;

/** What an {@link AdsServer} serves from. */
export interface AdsServerOptions {
  readonly store: RegistryStore;
  readonly hub: WatchHub<TopologyEvent>;
  readonly logger: Logger;
  /** Clock in epoch milliseconds; default Date.now. */
  readonly now?: () => number;
  readonly adjustResource?: AdjustXdsResource;
}

/** One request as the ADS handler hands it over: a known kind, or a type this server does not serve. */
export type AdsRequest = { readonly node: XdsNode | undefined } & (
  | { readonly request: XdsRequest }
  | { readonly request: undefined; readonly typeUrl: string }
);

/** A connected xDS client, as the client-status listing shows it. */
export interface XdsClientView {
  readonly node: XdsNode | undefined;
  readonly connectedAtMs: number;
  readonly subscriptions: readonly XdsSubscription[];
}

/** Per-kind totals since start, for metrics. */
export interface XdsCounters {
  readonly responses: Record<XdsResourceKind, number>;
  readonly acks: Record<XdsResourceKind, number>;
  readonly nacks: Record<XdsResourceKind, number>;
}

interface Session {
  readonly state: AdsStreamState;
  readonly connectedAtMs: number;
  /** The services of the last response per kind: what a wildcard resend compares with, and what versions account for. */
  readonly sentServices: Map<XdsResourceKind, readonly string[]>;
}

const schemas: Record<XdsResourceKind, DescMessage> = {
  listener: ListenerSchema,
  route: RouteConfigurationSchema,
  cluster: ClusterSchema,
  endpoint: ClusterLoadAssignmentSchema,
};

function perKind(): Record<XdsResourceKind, number> {
  return { listener: 0, route: 0, cluster: 0, endpoint: 0 };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

function isServiceName(name: string): boolean {
  try {
    validateServiceName(name, "resource_names");
    return true;
  } catch {
    return false;
  }
}

/**
 * Serves the registry over the Aggregated Discovery Service (state of the
 * world): per registry service, a Listener, RouteConfiguration, Cluster and
 * ClusterLoadAssignment named after it (see `core/xds/resources.ts`).
 *
 * - Every valid service name a client asks for exists, with an empty load
 *   assignment while the service has no instances: a client may start
 *   before its backends, and a service briefly without instances during a
 *   redeploy does not make clients drop their config.
 * - `version_info` is the registry revision that produced the response's
 *   resources: the latest revision that changed any of their services (the
 *   revision at startup for services unchanged since), and never below the
 *   version the stream was last sent for the type, so it survives restarts
 *   and never goes back. Nonces are fresh per response.
 * - Each stream follows the topology watch hub for the services it
 *   subscribed to; a change marks the stream's affected kinds, and the
 *   stream sends them when it next runs, so bursts coalesce.
 * - Load assignments are built once per service change and client region
 *   and shared by every stream.
 */
export class AdsServer {
  private readonly sessions = new Set<Session>();
  private readonly assignments = new Map<string, Map<string, Any>>();
  private readonly skipped = new Map<string, readonly SkippedEndpoint[]>();
  private readonly warned = new Set<string>();
  /** The revision of each service's latest change since startup. */
  private readonly serviceRevisions = new Map<string, number>();
  /** The revision at startup: what services unchanged since were produced by, as far as this process knows. */
  private readonly startRevision: number;
  private readonly now: () => number;
  private nonce = 0;
  /** Totals since start. */
  readonly counters: XdsCounters = { responses: perKind(), acks: perKind(), nacks: perKind() };

  constructor(private readonly options: AdsServerOptions) {
    this.now = options.now ?? Date.now;
    this.startRevision = options.store.log.currentRevision;
    options.store.onChange((change) => this.invalidate(change));
  }

  /** Open ADS streams. */
  get streamCount(): number {
    return this.sessions.size;
  }

  /** Instances left out of the load assignments being served (hostname or duplicate address), over all services. */
  get skippedEndpointCount(): number {
    let count = 0;
    for (const skipped of this.skipped.values()) count += skipped.length;
    return count;
  }

  /** Every connected client with its subscriptions, oldest connection first. */
  clients(): XdsClientView[] {
    return [...this.sessions].map((session) => ({
      node: session.state.clientNode,
      connectedAtMs: session.connectedAtMs,
      subscriptions: session.state.subscriptionsView(),
    }));
  }

  /**
   * One ADS stream: applies the client's requests as they arrive and yields
   * the responses they and later topology changes call for. Ends when the
   * client half-closes, `signal` aborts, or the hub closes (shutdown).
   */
  async *stream(requests: AsyncIterable<AdsRequest>, signal: AbortSignal): AsyncGenerator<DiscoveryResponse> {
    const { store, hub, logger } = this.options;
    const session: Session = { state: new AdsStreamState(), connectedAtMs: this.now(), sentServices: new Map() };
    const wakeup = new Wakeup(signal);
    const watchController = new AbortController();
    const stopWatch = (): void => watchController.abort();
    signal.addEventListener("abort", stopWatch, { once: true });
    let ended: { readonly error?: unknown } | undefined;
    const end = (outcome: { readonly error?: unknown }): void => {
      ended ??= outcome;
      wakeup.wake();
    };
    this.sessions.add(session);
    void (async () => {
      for await (const request of requests) {
        this.receive(session, request);
        wakeup.wake();
      }
    })().then(
      () => end({}),
      (error: unknown) => end({ error }),
    );
    const watch = hub.watch({
      startRevision: store.log.currentRevision,
      matches: (event) => session.state.cares(event.record.instance.serviceName),
      snapshot: () => undefined,
      signal: watchController.signal,
    });
    void (async () => {
      for await (const message of watch) {
        this.follow(session, message);
        wakeup.wake();
      }
    })().then(
      () => end({}),
      (error: unknown) => end({ error }),
    );
    try {
      for (;;) {
        await wakeup.wait();
        if (signal.aborted) return;
        if (ended !== undefined) {
          if (ended.error !== undefined) throw ended.error;
          return;
        }
        for (const response of this.responses(session)) yield response;
      }
    } finally {
      signal.removeEventListener("abort", stopWatch);
      stopWatch();
      this.sessions.delete(session);
      logger.debug({ node: session.state.clientNode?.id }, "xds: stream closed");
    }
  }

  private receive(session: Session, { node, ...rest }: AdsRequest): void {
    const { logger } = this.options;
    if (node !== undefined) session.state.identify(node);
    if (rest.request === undefined) {
      logger.debug({ node: session.state.clientNode?.id, typeUrl: rest.typeUrl }, "xds: ignored a request for a type this server does not serve");
      return;
    }
    const { request } = rest;
    const outcome = session.state.receive(request, this.now());
    if (outcome.kind === "ack") this.counters.acks[request.kind]++;
    else if (outcome.kind === "nack") {
      this.counters.nacks[request.kind]++;
      logger.warn(
        { node: session.state.clientNode?.id, type: typeUrls[request.kind], version: outcome.nack.version, error: outcome.nack.message },
        "xds: client rejected a response (NACK); it keeps its last accepted config",
      );
    }
  }

  private follow(session: Session, message: WatchMessage<TopologyEvent, undefined>): void {
    if (message.kind === "snapshot") session.state.markAll();
    else if (message.kind === "change") {
      const services = new Set<string>();
      let serviceSetChanged = false;
      for (const event of message.change.events) {
        services.add(event.record.instance.serviceName);
        if (event.kind !== "updated") serviceSetChanged = true;
      }
      session.state.topologyChanged(services, serviceSetChanged);
    }
  }

  /** The responses a session owes now, one per marked kind. */
  private *responses(session: Session): Generator<DiscoveryResponse> {
    for (const { kind, names, requested } of session.state.takeDirty()) {
      const services = names === undefined ? this.serviceNames() : [...names].filter(isServiceName).sort();
      const previous = session.sentServices.get(kind) ?? [];
      // A wildcard subscription is marked on every registration or removal; resend only when the set of services moved.
      if (names === undefined && !requested && sameList(previous, services)) continue;
      session.sentServices.set(kind, services);
      const region = session.state.clientNode?.region ?? "";
      const resources = services.map((service) => this.resource(kind, service, region));
      // Services that left count too: their removal produced this response.
      const produced = Math.max(this.versionOf(services), this.versionOf(previous));
      const version = String(session.state.nextVersion(kind, produced));
      const nonce = String(++this.nonce);
      session.state.sent(kind, version, nonce);
      this.counters.responses[kind]++;
      yield create(DiscoveryResponseSchema, {
        versionInfo: version,
        resources,
        typeUrl: typeUrls[kind],
        nonce,
        controlPlane: { identifier: "latticeforge" },
      });
    }
  }

  /** The latest revision that changed any of `services`. */
  private versionOf(services: readonly string[]): number {
    let version = this.startRevision;
    for (const service of services) version = Math.max(version, this.serviceRevisions.get(service) ?? 0);
    return version;
  }

  private resource(kind: XdsResourceKind, service: string, region: string): Any {
    const resource = kind === "endpoint" ? this.assignment(service, region) : this.pack(kind, service);
    return this.options.adjustResource?.(kind, service, resource) ?? resource;
  }

  private pack(kind: Exclude<XdsResourceKind, "endpoint">, service: string): Any {
    const schema = schemas[kind];
    const message =
      kind === "listener" ? buildListener(service) : kind === "route" ? buildRouteConfiguration(service) : buildCluster(service);
    return anyPack(schema, message as MessageShape<typeof schema>);
  }

  /** The service's load assignment for clients in `region`, built once per change. */
  private assignment(service: string, region: string): Any {
    let byRegion = this.assignments.get(service);
    const cached = byRegion?.get(region);
    if (cached !== undefined) return cached;
    const records = this.options.store.state.records(new Set([service]));
    const { assignment, skipped } = buildLoadAssignment(service, records, region === "" ? undefined : region);
    this.noteSkipped(service, skipped);
    const packed = anyPack(ClusterLoadAssignmentSchema, assignment);
    if (byRegion === undefined) {
      byRegion = new Map();
      this.assignments.set(service, byRegion);
    }
    byRegion.set(region, packed);
    return packed;
  }

  private noteSkipped(service: string, skipped: readonly SkippedEndpoint[]): void {
    if (skipped.length === 0) this.skipped.delete(service);
    else this.skipped.set(service, skipped);
    for (const { instanceId, endpoint, reason } of skipped) {
      const key = `${instanceId}\n${endpoint}\n${reason}`;
      if (this.warned.has(key)) continue;
      this.warned.add(key);
      this.options.logger.warn(
        { service, instanceId, endpoint, reason },
        reason === "not_ip"
          ? "xds: instance left out of EDS: its endpoint host is not an IP address, which gRPC clients reject"
          : "xds: instance left out of EDS: another instance of the service has the same address",
      );
    }
  }

  private serviceNames(): string[] {
    const names = new Set<string>();
    for (const record of this.options.store.state.records()) names.add(record.instance.serviceName);
    return [...names];
  }

  /** Drops the cached load assignments of the services a committed change touched. */
  private invalidate(change: RevisionedChange<TopologyEvent>): void {
    for (const event of change.events) {
      const { serviceName, instanceId } = event.record.instance;
      this.serviceRevisions.set(serviceName, change.revision);
      this.assignments.delete(serviceName);
      this.skipped.delete(serviceName);
      if (event.kind === "removed") {
        for (const key of this.warned) if (key.startsWith(`${instanceId}\n`)) this.warned.delete(key);
      }
    }
  }
}
