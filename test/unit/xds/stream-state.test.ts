import { describe, expect, it } from "vitest";
import type { XdsResourceKind } from "../../../server/core/xds/resources.js";
import { AdsStreamState, type XdsNode, type XdsRequest } from "../../../server/core/xds/stream-state.js";

const t0 = 1_700_000_000_000;

/** A request of `kind`: a first subscription (empty nonce, no names) unless overridden. */
function request(kind: XdsResourceKind, overrides: Partial<XdsRequest> = {}): XdsRequest {
  return { kind, versionInfo: "", resourceNames: [], responseNonce: "", errorMessage: undefined, ...overrides };
}

/** The due kinds and their names (sorted; "*" for a wildcard), clearing the marks. */
function due(state: AdsStreamState): [XdsResourceKind, string[] | "*"][] {
  return state.takeDirty().map(({ kind, names }) => [kind, names === undefined ? "*" : [...names].sort()]);
}

/** Subscribes `kind` to `names` and records the response as sent with `version` and `nonce`. */
function subscribed(state: AdsStreamState, kind: XdsResourceKind, names: string[], version: string, nonce: string): void {
  expect(state.receive(request(kind, { resourceNames: names }), t0)).toEqual({ kind: "subscribe" });
  state.takeDirty();
  state.sent(kind, version, nonce);
}

function view(state: AdsStreamState, kind: XdsResourceKind) {
  const subscription = state.subscriptionsView().find((s) => s.kind === kind);
  if (subscription === undefined) throw new Error(`no ${kind} subscription`);
  return subscription;
}

const node = (id: string): XdsNode => ({
  id,
  cluster: `${id}-cluster`,
  region: "eu-west",
  zone: "eu-west-1a",
  subZone: "",
  userAgentName: "gRPC Node Pure JS",
  userAgentVersion: "1.14.1",
});

describe("AdsStreamState: subscriptions", () => {
  it("subscribes on an empty nonce and owes the kind a response with the requested names", () => {
    const state = new AdsStreamState();
    expect(state.receive(request("endpoint", { resourceNames: ["b", "a"] }), t0)).toEqual({ kind: "subscribe" });
    expect(due(state)).toEqual([["endpoint", ["a", "b"]]]);
    expect(due(state)).toEqual([]);
    expect(view(state, "endpoint")).toEqual({
      kind: "endpoint",
      names: ["a", "b"],
      wildcard: false,
      sentVersion: "",
      sentNonce: "",
      ackedVersion: "",
      ackedAtMs: undefined,
      lastNack: undefined,
    });
  });

  it("answers every empty-nonce request, even with unchanged names (a reopened subscription)", () => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["a"], "5", "n1");
    expect(state.receive(request("endpoint", { resourceNames: ["a"], versionInfo: "5" }), t0)).toEqual({ kind: "subscribe" });
    expect(due(state)).toEqual([["endpoint", ["a"]]]);
  });

  it("takes the version a reconnecting client reports as the one it holds", () => {
    const state = new AdsStreamState();
    state.receive(request("endpoint", { resourceNames: ["a"], versionInfo: "17" }), t0);
    expect(view(state, "endpoint").ackedVersion).toBe("17");
    expect(due(state)).toEqual([["endpoint", ["a"]]]);
  });

  it("treats a nonce on a kind never subscribed on this stream as a subscription (a stream to a restarted server)", () => {
    const state = new AdsStreamState();
    expect(state.receive(request("cluster", { resourceNames: ["a"], responseNonce: "41", versionInfo: "9" }), t0)).toEqual({ kind: "subscribe" });
    expect(due(state)).toEqual([["cluster", ["a"]]]);
  });

  it.each([
    ["listener", [], true],
    ["cluster", [], true],
    ["listener", ["*"], true],
    ["cluster", ["*"], true],
    ["route", [], false],
    ["endpoint", [], false],
    ["listener", ["a"], false],
    ["cluster", ["a", "b"], false],
  ] as const)("a first %s request for %j is wildcard: %s", (kind, names, wildcard) => {
    const state = new AdsStreamState();
    state.receive(request(kind, { resourceNames: [...names] }), t0);
    expect(view(state, kind).wildcard).toBe(wildcard);
    expect(view(state, kind).names).toEqual(wildcard ? [] : [...names]);
    expect(due(state)).toEqual([[kind, wildcard ? "*" : [...names]]]);
  });

  it("turns a named CDS subscription into a wildcard one when an ACK asks for *", () => {
    const state = new AdsStreamState();
    subscribed(state, "cluster", ["a"], "5", "n1");
    expect(state.receive(request("cluster", { resourceNames: ["*"], versionInfo: "5", responseNonce: "n1" }), t0)).toEqual({ kind: "ack", version: "5" });
    expect(view(state, "cluster").wildcard).toBe(true);
    expect(due(state)).toEqual([["cluster", "*"]]);
  });

  it("keeps a wildcard (no names) CDS subscription wildcard when its ACK again names nothing", () => {
    // xDS: a stream that never named a resource of the type stays subscribed to
    // every one; clients ACK a wildcard response with empty resource_names.
    const state = new AdsStreamState();
    subscribed(state, "cluster", [], "5", "n1");
    expect(state.receive(request("cluster", { versionInfo: "5", responseNonce: "n1" }), t0 + 1)).toEqual({ kind: "ack", version: "5" });
    expect(view(state, "cluster")).toMatchObject({ wildcard: true, ackedVersion: "5" });
    expect(due(state)).toEqual([]);
    state.topologyChanged(new Set(["new-service"]), true);
    expect(due(state)).toEqual([["cluster", "*"]]);
  });

  it("unsubscribes every name when a named EDS subscription's ACK names none", () => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["a"], "5", "n1");
    state.receive(request("endpoint", { versionInfo: "5", responseNonce: "n1" }), t0);
    expect(view(state, "endpoint")).toMatchObject({ names: [], wildcard: false });
    expect(due(state)).toEqual([["endpoint", []]]);
  });
});

describe("AdsStreamState: ACK, NACK and stale nonces", () => {
  it("takes a request echoing the latest nonce as an ACK of its version, owing nothing", () => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["a"], "5", "n1");
    expect(state.receive(request("endpoint", { resourceNames: ["a"], versionInfo: "5", responseNonce: "n1" }), t0 + 10)).toEqual({ kind: "ack", version: "5" });
    expect(view(state, "endpoint")).toMatchObject({ sentVersion: "5", sentNonce: "n1", ackedVersion: "5", ackedAtMs: t0 + 10, lastNack: undefined });
    expect(due(state)).toEqual([]);
  });

  it("takes a latest-nonce request with error_detail as a NACK of the sent version, keeping the acked one and owing nothing", () => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["a"], "5", "n1");
    state.receive(request("endpoint", { resourceNames: ["a"], versionInfo: "5", responseNonce: "n1" }), t0 + 1);
    state.sent("endpoint", "8", "n2");
    // The client NACKs with the version it still holds, as clients do.
    const outcome = state.receive(
      request("endpoint", { resourceNames: ["a"], versionInfo: "5", responseNonce: "n2", errorMessage: "bad address" }),
      t0 + 20,
    );
    const nack = { version: "8", nonce: "n2", message: "bad address", atMs: t0 + 20 };
    expect(outcome).toEqual({ kind: "nack", nack });
    expect(view(state, "endpoint")).toMatchObject({ sentVersion: "8", sentNonce: "n2", ackedVersion: "5", ackedAtMs: t0 + 1, lastNack: nack });
    expect(due(state)).toEqual([]);
  });

  it("keeps the last NACK after a later ACK", () => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["a"], "5", "n1");
    state.receive(request("endpoint", { resourceNames: ["a"], responseNonce: "n1", errorMessage: "no" }), t0 + 1);
    state.sent("endpoint", "6", "n2");
    state.receive(request("endpoint", { resourceNames: ["a"], versionInfo: "6", responseNonce: "n2" }), t0 + 2);
    expect(view(state, "endpoint")).toMatchObject({ ackedVersion: "6", lastNack: { version: "5", nonce: "n1", message: "no" } });
  });

  it.each([
    ["an ACK", undefined],
    ["a NACK", "rejected"],
  ])("answers %s that changes the names", (_, errorMessage) => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["a"], "5", "n1");
    const outcome = state.receive(request("endpoint", { resourceNames: ["a", "b"], versionInfo: "5", responseNonce: "n1", errorMessage }), t0);
    expect(outcome.kind).toBe(errorMessage === undefined ? "ack" : "nack");
    expect(view(state, "endpoint").names).toEqual(["a", "b"]);
    expect(due(state)).toEqual([["endpoint", ["a", "b"]]]);
  });

  it.each([
    ["an ACK", undefined, ["a"]],
    ["a NACK", "rejected", ["a"]],
    ["a name change", undefined, ["a", "b"]],
  ] as const)("ignores %s echoing an older nonce as stale, changing nothing", (_, errorMessage, names) => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["a"], "5", "n1");
    state.sent("endpoint", "6", "n2");
    const before = state.subscriptionsView();
    const outcome = state.receive(request("endpoint", { resourceNames: [...names], versionInfo: "5", responseNonce: "n1", errorMessage }), t0 + 5);
    expect(outcome).toEqual({ kind: "stale" });
    expect(state.subscriptionsView()).toEqual(before);
    expect(due(state)).toEqual([]);
  });

  it("tracks nonces per kind", () => {
    const state = new AdsStreamState();
    subscribed(state, "cluster", ["a"], "5", "n1");
    subscribed(state, "endpoint", ["a"], "5", "n2");
    expect(state.receive(request("cluster", { resourceNames: ["a"], versionInfo: "5", responseNonce: "n1" }), t0).kind).toBe("ack");
    expect(state.receive(request("endpoint", { resourceNames: ["a"], versionInfo: "5", responseNonce: "n1" }), t0).kind).toBe("stale");
    expect(state.receive(request("endpoint", { resourceNames: ["a"], versionInfo: "5", responseNonce: "n2" }), t0).kind).toBe("ack");
  });
});

describe("AdsStreamState: topology changes", () => {
  function everyKind(): AdsStreamState {
    const state = new AdsStreamState();
    subscribed(state, "listener", ["a"], "1", "l1");
    subscribed(state, "route", ["a"], "1", "r1");
    subscribed(state, "cluster", ["a"], "1", "c1");
    subscribed(state, "endpoint", ["a", "b"], "1", "e1");
    return state;
  }

  it("marks only the endpoint subscription, and only for a service it names", () => {
    const state = everyKind();
    state.topologyChanged(new Set(["z"]), true);
    expect(due(state)).toEqual([]);
    state.topologyChanged(new Set(["z", "b"]), false);
    expect(due(state)).toEqual([["endpoint", ["a", "b"]]]);
    state.topologyChanged(new Set(["a"]), true);
    expect(due(state)).toEqual([["endpoint", ["a", "b"]]]);
  });

  it("marks wildcard listener and cluster subscriptions only when the set of services changed", () => {
    const state = new AdsStreamState();
    subscribed(state, "listener", [], "1", "l1");
    subscribed(state, "cluster", ["*"], "1", "c1");
    subscribed(state, "endpoint", ["a"], "1", "e1");
    state.topologyChanged(new Set(["a"]), false);
    expect(due(state)).toEqual([["endpoint", ["a"]]]);
    state.topologyChanged(new Set(["q"]), true);
    expect(due(state)).toEqual([
      ["listener", "*"],
      ["cluster", "*"],
    ]);
  });

  it("marks every subscription on markAll, and takeDirty returns them in resolution order", () => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["a"], "1", "e1");
    subscribed(state, "cluster", ["a"], "1", "c1");
    subscribed(state, "route", ["a"], "1", "r1");
    subscribed(state, "listener", [], "1", "l1");
    state.markAll();
    expect(due(state)).toEqual([
      ["listener", "*"],
      ["route", ["a"]],
      ["cluster", ["a"]],
      ["endpoint", ["a"]],
    ]);
    expect(due(state)).toEqual([]);
  });

  it("cares about the services it names and, with a wildcard, about every service", () => {
    const state = new AdsStreamState();
    expect(state.cares("a")).toBe(false);
    subscribed(state, "endpoint", ["a"], "1", "e1");
    expect(state.cares("a")).toBe(true);
    expect(state.cares("b")).toBe(false);
    subscribed(state, "cluster", [], "1", "c1");
    expect(state.cares("b")).toBe(true);
  });
});

describe("AdsStreamState: sent, node and view", () => {
  it("records the sent version and nonce of a subscribed kind only", () => {
    const state = new AdsStreamState();
    state.sent("endpoint", "3", "n0");
    expect(state.subscriptionsView()).toEqual([]);
    subscribed(state, "endpoint", ["a"], "4", "n1");
    expect(view(state, "endpoint")).toMatchObject({ sentVersion: "4", sentNonce: "n1" });
  });

  it("lists subscriptions in resolution order with sorted names", () => {
    const state = new AdsStreamState();
    subscribed(state, "endpoint", ["zeta", "Alpha", "beta"], "1", "e1");
    subscribed(state, "listener", ["x"], "1", "l1");
    expect(state.subscriptionsView().map((s) => [s.kind, s.names])).toEqual([
      ["listener", ["x"]],
      ["endpoint", ["Alpha", "beta", "zeta"]],
    ]);
  });

  it("keeps the first node a stream identifies with", () => {
    const state = new AdsStreamState();
    expect(state.clientNode).toBeUndefined();
    state.identify(node("first"));
    state.identify(node("second"));
    expect(state.clientNode).toEqual(node("first"));
  });
});
