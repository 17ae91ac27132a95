import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Node } from "../../gen/envoy/config/core/v3/base_pb.js";
import type { DiscoveryRequest } from "../../gen/envoy/service/discovery/v3/discovery_pb.js";
import { XdsClientSchema, type XdsClient } from "../../gen/latticeforge/xds/v1/xds_pb.js";
import { resourceKindOf, typeUrls } from "../core/xds/resources.js";
import type { XdsNode } from "../core/xds/stream-state.js";
import type { AdsRequest, XdsClientView } from "../xds/ads-server.js";

/** The node fields the control plane keeps: identity, locality and user agent. */
export function nodeFromProto(node: Node): XdsNode {
  const version = node.userAgentVersionType;
  return {
    id: node.id,
    cluster: node.cluster,
    region: node.locality?.region ?? "",
    zone: node.locality?.zone ?? "",
    subZone: node.locality?.subZone ?? "",
    userAgentName: node.userAgentName,
    userAgentVersion:
      version.case === "userAgentVersion"
        ? version.value
        : version.case === "userAgentBuildVersion"
          ? `${version.value.version?.majorNumber ?? 0}.${version.value.version?.minorNumber ?? 0}.${version.value.version?.patch ?? 0}`
          : "",
  };
}

/** A DiscoveryRequest as the ADS server takes it; requests for types we do not serve keep their type URL. */
export function adsRequestFromProto(request: DiscoveryRequest): AdsRequest {
  const node = request.node !== undefined ? nodeFromProto(request.node) : undefined;
  const kind = resourceKindOf(request.typeUrl);
  if (kind === undefined) return { node, request: undefined, typeUrl: request.typeUrl };
  return {
    node,
    request: {
      kind,
      versionInfo: request.versionInfo,
      resourceNames: request.resourceNames,
      responseNonce: request.responseNonce,
      errorMessage: request.errorDetail !== undefined ? request.errorDetail.message || `code ${request.errorDetail.code}` : undefined,
    },
  };
}

/** One connected client as ListClients shows it. */
export function xdsClientToProto(view: XdsClientView): XdsClient {
  const node = view.node;
  return create(XdsClientSchema, {
    nodeId: node?.id ?? "",
    nodeCluster: node?.cluster ?? "",
    locality: { region: node?.region ?? "", zone: node?.zone ?? "", subZone: node?.subZone ?? "" },
    userAgentName: node?.userAgentName ?? "",
    userAgentVersion: node?.userAgentVersion ?? "",
    connectedAt: timestampFromMs(view.connectedAtMs),
    subscriptions: view.subscriptions.map((s) => ({
      typeUrl: typeUrls[s.kind],
      resourceNames: [...s.names],
      wildcard: s.wildcard,
      sentVersion: s.sentVersion,
      sentNonce: s.sentNonce,
      ackedVersion: s.ackedVersion,
      ...(s.ackedAtMs !== undefined ? { ackedAt: timestampFromMs(s.ackedAtMs) } : {}),
      ...(s.lastNack !== undefined
        ? {
            lastNack: {
              version: s.lastNack.version,
              nonce: s.lastNack.nonce,
              errorMessage: s.lastNack.message,
              rejectedAt: timestampFromMs(s.lastNack.atMs),
            },
          }
        : {}),
    })),
  });
}
