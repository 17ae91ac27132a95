import { create } from "@bufbuild/protobuf";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { ClusterLoadAssignmentSchema } from "../../gen/envoy/config/endpoint/v3/endpoint_pb.js";
import { DiscoveryResponseSchema, type DiscoveryResponse } from "../../gen/envoy/service/discovery/v3/discovery_pb.js";
import type { TopologyEvent } from "../core/registry/model.js";
import {
  buildLoadAssignment,
  packServiceResource,
  resourceService,
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

function perKind(): Record<XdsResourceKind, number> {
  return { listener: 0, route: 0, cluster: 0, endpoint: 0 };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
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
  /** Per instance, the (endpoint, reason) pairs already warned about. */
  private readonly warned = new Map<string, Set<string>>();
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
    let ended: { readonly error?: unknown } | undefined;
    const end = (outcome: { readonly error?: unknown }): void => {
      ended ??= outcome;
      wakeup.wake();
    };
    try {
      signal.addEventListener("abort", stopWatch, { once: true });
      this.sessions.add(session);
      void (async () => {
        for await (const request of requests) {
          if (ended !== undefined || signal.aborted) return;
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
      // (resource name, service) pairs, by name; a name that cannot be a service's resource does not exist.
      const served: [string, string][] = [];
      if (names === undefined) for (const service of this.options.store.state.serviceNames()) served.push([service, service]);
      else {
        for (const name of [...names].sort()) {
          const service = resourceService(kind, name);
          if (service !== undefined) served.push([name, service]);
        }
      }
      const services = served.map(([, service]) => service);
      const previous = session.sentServices.get(kind) ?? [];
      // A wildcard subscription is marked on every registration or removal; resend only when the set of services moved.
      if (names === undefined && !requested && sameList(previous, services)) continue;
      session.sentServices.set(kind, services);
      const region = session.state.clientNode?.region ?? "";
      const resources = served.map(([name, service]) => this.resource(kind, name, service, region));
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

  private resource(kind: XdsResourceKind, name: string, service: string, region: string): Any {
    const resource = kind === "endpoint" ? this.assignment(service, region) : packServiceResource(kind, name, service);
    return this.options.adjustResource?.(kind, service, resource) ?? resource;
  }

  /**
   * The service's load assignment for clients in `region`, built once per
   * change of the service. Only a region the service has instances in can
   * change the assignment (priorities), so other regions share the
   * region-less entry; a service without instances is not cached (any name
   * may be asked for).
   */
  private assignment(service: string, region: string): Any {
    const byRegion = this.assignments.get(service);
    const hit = byRegion?.get(region);
    if (hit !== undefined) return hit;
    const records = this.options.store.state.records(new Set([service]));
    const key = records.some((record) => record.instance.region === region) ? region : "";
    const cached = byRegion?.get(key);
    if (cached !== undefined) return cached;
    const { assignment, skipped } = buildLoadAssignment(service, records, key === "" ? undefined : key);
    this.noteSkipped(service, skipped);
    const packed = anyPack(ClusterLoadAssignmentSchema, assignment);
    if (records.length > 0) {
      const entries = byRegion ?? new Map<string, Any>();
      entries.set(key, packed);
      this.assignments.set(service, entries);
    }
    return packed;
  }

  private noteSkipped(service: string, skipped: readonly SkippedEndpoint[]): void {
    if (skipped.length === 0) this.skipped.delete(service);
    else this.skipped.set(service, skipped);
    for (const { instanceId, endpoint, reason } of skipped) {
      const key = `${endpoint}\n${reason}`;
      const warned = this.warned.get(instanceId) ?? new Set<string>();
      if (warned.has(key)) continue;
      warned.add(key);
      this.warned.set(instanceId, warned);
      this.options.logger.warn(
        { service, instanceId, endpoint, reason },
        reason === "not_ip"
          ? "xds: instance left out of EDS: its endpoint host is not an IP address, which gRPC clients reject"
          : "xds: instance left out of EDS: another instance of the service has the same address",
      );
    }
  }

  /** Drops the cached load assignments of the services a committed change touched. */
  private invalidate(change: RevisionedChange<TopologyEvent>): void {
    for (const event of change.events) {
      const { serviceName, instanceId } = event.record.instance;
      this.serviceRevisions.set(serviceName, change.revision);
      this.assignments.delete(serviceName);
      this.skipped.delete(serviceName);
      if (event.kind === "removed") this.warned.delete(instanceId);
    }
  }
}
