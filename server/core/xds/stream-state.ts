/**
 * What one ADS stream (state of the world) has asked for and been told, per
 * resource kind: the xDS protocol's subscription, ACK and NACK bookkeeping,
 * without I/O. The RPC layer feeds it requests and topology changes and
 * asks it which kinds need a response.
 */
import { xdsResourceKinds, type XdsResourceKind } from "./resources.js";

/** The client's identity, from the `node` of its first request that had one. */
export interface XdsNode {
  readonly id: string;
  readonly cluster: string;
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
  readonly userAgentName: string;
  readonly userAgentVersion: string;
}

/** A response the client rejected. */
export interface XdsNack {
  /** The version the rejected response carried. */
  readonly version: string;
  readonly nonce: string;
  readonly message: string;
  readonly atMs: number;
}

/** One kind's subscription on a stream, as the client-status listing shows it. */
export interface XdsSubscription {
  readonly kind: XdsResourceKind;
  /** The resource names asked for, sorted; empty with `wildcard`. */
  readonly names: readonly string[];
  /** Every resource of the kind (LDS/CDS asked with no names, or with `*`). */
  readonly wildcard: boolean;
  readonly sentVersion: string;
  readonly sentNonce: string;
  /** The version the client last accepted ("" before any). */
  readonly ackedVersion: string;
  readonly ackedAtMs: number | undefined;
  readonly lastNack: XdsNack | undefined;
}

/** One DiscoveryRequest, reduced to what the protocol state needs. */
export interface XdsRequest {
  readonly kind: XdsResourceKind;
  readonly versionInfo: string;
  readonly resourceNames: readonly string[];
  readonly responseNonce: string;
  /** Set on a NACK: why the client rejected the response named by `responseNonce`. */
  readonly errorMessage: string | undefined;
}

/** How {@link AdsStreamState.receive} classified a request. */
export type XdsRequestOutcome =
  | { readonly kind: "subscribe" }
  | { readonly kind: "ack"; readonly version: string }
  | { readonly kind: "nack"; readonly nack: XdsNack }
  /** A response to an older nonce: superseded, ignored as the protocol says. */
  | { readonly kind: "stale" };

/** A kind owing a response (see {@link AdsStreamState.takeDirty}). */
export interface XdsDue {
  readonly kind: XdsResourceKind;
  /** The names to answer; undefined for a wildcard subscription (every resource). */
  readonly names: ReadonlySet<string> | undefined;
  /** The client asked (subscribed or changed its names), rather than the resources changing. */
  readonly requested: boolean;
}

/** LDS and CDS requests without names (or with `*`) subscribe to every resource of the kind. */
const wildcardKinds: ReadonlySet<XdsResourceKind> = new Set(["listener", "cluster"]);

class Subscription {
  names = new Set<string>();
  wildcard = false;
  sentVersion = "";
  sentNonce = "";
  ackedVersion = "";
  ackedAtMs: number | undefined;
  lastNack: XdsNack | undefined;
  /** Whether the client should be sent this kind's resources: because it asked, or because they changed. */
  dirty: "requested" | "changed" | undefined;
  /** Whether the client ever named resources of this kind (then an empty list means none, not all). */
  private named = false;

  constructor(readonly kind: XdsResourceKind) {}

  /**
   * Adopts the request's names; true when they differ from the current
   * ones. For LDS and CDS, `*` asks for everything, and so does an empty
   * list from a client that never named resources of the kind (the legacy
   * wildcard, which ACKs keep: they repeat the empty list).
   */
  subscribe(resourceNames: readonly string[]): boolean {
    const names = new Set(resourceNames.filter((name) => name !== "*"));
    if (names.size > 0) this.named = true;
    const wildcard = wildcardKinds.has(this.kind) && (resourceNames.includes("*") || (resourceNames.length === 0 && !this.named));
    const changed = wildcard !== this.wildcard || names.size !== this.names.size || [...names].some((n) => !this.names.has(n));
    this.wildcard = wildcard;
    this.names = names;
    return changed;
  }
}

/**
 * The protocol state of one ADS stream.
 *
 * Rules (the xDS state-of-the-world protocol):
 * - a request with an empty `response_nonce` opens (or, after a reconnect,
 *   reopens) a kind's subscription and is always answered, even when the
 *   client already holds `version_info`: the answer carries the same
 *   resources, so a reconnect never changes a client's config;
 * - a request echoing the latest nonce of its kind is an ACK, or a NACK
 *   when it carries `error_detail`; the client keeps its last good config,
 *   so a NACKed response is not resent until something changes; either may
 *   change the subscribed names, which is answered;
 * - a request echoing an older nonce is stale and ignored;
 * - a topology change marks the kinds whose resources it touches;
 * - versions sent for a kind never go back, even when the subscription
 *   drops the service with the newest change (see {@link nextVersion}).
 */
export class AdsStreamState {
  private node: XdsNode | undefined;
  private readonly subscriptions = new Map<XdsResourceKind, Subscription>();

  /** The client's identity, once a request has carried one. */
  get clientNode(): XdsNode | undefined {
    return this.node;
  }

  /** Records the client's node (only the first one a stream sends counts). */
  identify(node: XdsNode): void {
    this.node ??= node;
  }

  /** Applies one request and says what it was. */
  receive(request: XdsRequest, nowMs: number): XdsRequestOutcome {
    let subscription = this.subscriptions.get(request.kind);
    if (request.responseNonce === "" || subscription === undefined) {
      subscription ??= new Subscription(request.kind);
      this.subscriptions.set(request.kind, subscription);
      subscription.subscribe(request.resourceNames);
      if (request.versionInfo !== "" && subscription.ackedVersion === "") subscription.ackedVersion = request.versionInfo;
      subscription.dirty = "requested";
      return { kind: "subscribe" };
    }
    if (request.responseNonce !== subscription.sentNonce) return { kind: "stale" };
    const namesChanged = subscription.subscribe(request.resourceNames);
    if (namesChanged) subscription.dirty = "requested";
    if (request.errorMessage !== undefined) {
      const nack = { version: subscription.sentVersion, nonce: request.responseNonce, message: request.errorMessage, atMs: nowMs };
      subscription.lastNack = nack;
      return { kind: "nack", nack };
    }
    subscription.ackedVersion = request.versionInfo;
    subscription.ackedAtMs = nowMs;
    return { kind: "ack", version: request.versionInfo };
  }

  /**
   * Marks what a topology change touches: the endpoints of every changed
   * service the stream subscribed to, and, when services appeared or
   * disappeared, wildcard listener and cluster subscriptions.
   */
  topologyChanged(changedServices: ReadonlySet<string>, serviceSetChanged: boolean): void {
    for (const subscription of this.subscriptions.values()) {
      if (subscription.wildcard) {
        if (serviceSetChanged) subscription.dirty ??= "changed";
      } else if (subscription.kind === "endpoint") {
        for (const service of changedServices) {
          if (subscription.names.has(service)) {
            subscription.dirty ??= "changed";
            break;
          }
        }
      }
    }
  }

  /** Marks every subscription (after a watch reset, when what changed is unknown). */
  markAll(): void {
    for (const subscription of this.subscriptions.values()) subscription.dirty ??= "changed";
  }

  /** Whether a topology event of `service` can matter to this stream. */
  cares(service: string): boolean {
    for (const subscription of this.subscriptions.values()) {
      if (subscription.wildcard || subscription.names.has(service)) return true;
    }
    return false;
  }

  /**
   * The kinds owing a response, in resolution order, each with the names
   * to answer (undefined for a wildcard: every resource) and whether the
   * client asked (a request must be answered even when nothing changed);
   * clears the marks.
   */
  takeDirty(): XdsDue[] {
    const due: XdsDue[] = [];
    for (const kind of xdsResourceKinds) {
      const subscription = this.subscriptions.get(kind);
      if (subscription?.dirty === undefined) continue;
      due.push({ kind, names: subscription.wildcard ? undefined : subscription.names, requested: subscription.dirty === "requested" });
      subscription.dirty = undefined;
    }
    return due;
  }

  /**
   * The version to send for `kind` when its resources were produced at
   * `produced`: never below the version last sent for the kind, so a
   * stream's versions are monotonic whatever its subscription does.
   */
  nextVersion(kind: XdsResourceKind, produced: number): number {
    const sent = Number(this.subscriptions.get(kind)?.sentVersion || 0);
    return Math.max(produced, Number.isSafeInteger(sent) ? sent : 0);
  }

  /** Records a response sent for `kind`. */
  sent(kind: XdsResourceKind, version: string, nonce: string): void {
    const subscription = this.subscriptions.get(kind);
    if (subscription === undefined) return;
    subscription.sentVersion = version;
    subscription.sentNonce = nonce;
  }

  /** Every subscription's state, in resolution order. */
  subscriptionsView(): XdsSubscription[] {
    const view: XdsSubscription[] = [];
    for (const kind of xdsResourceKinds) {
      const s = this.subscriptions.get(kind);
      if (s === undefined) continue;
      view.push({
        kind,
        names: [...s.names].sort(),
        wildcard: s.wildcard,
        sentVersion: s.sentVersion,
        sentNonce: s.sentNonce,
        ackedVersion: s.ackedVersion,
        ackedAtMs: s.ackedAtMs,
        lastNack: s.lastNack,
      });
    }
    return view;
  }
}
