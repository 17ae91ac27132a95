#!/usr/bin/env bash
# Generates protobuf-es code for the Envoy xDS protos the ADS server needs
# (ads, listener, http_connection_manager, router, route, cluster, endpoint
# and their imports) from the copies shipped in @grpc/grpc-js-xds, into
# <out>/gen (default: the repository root, so gen/envoy/..., gen/xds/...).
#
# The protos are used from the package, never copied into proto/. Two
# adjustments happen in a temporary workspace, not in the package:
#  - the package's protoc-gen-validate validate.proto predates the
#    `ignore_empty` string rule (field 26 upstream) that its envoy-api copy
#    uses, which buf (unlike proto-loader) refuses to compile; the rule is
#    added to a temporary copy;
#  - google/rpc/status.proto is already generated from proto/google/rpc
#    (the same message), so the envoy files import that one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root}"
deps="$root/node_modules/@grpc/grpc-js-xds/deps"
[ -d "$deps" ] || { echo "missing $deps: run npm ci" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for module in envoy-api xds googleapis; do ln -s "$deps/$module" "$work/$module"; done
mkdir -p "$work/protoc-gen-validate/validate"
sed 's|^\(\s*\)optional bool strict\s*= 25.*|&\n\1optional bool ignore_empty = 26;|' \
  "$deps/protoc-gen-validate/validate/validate.proto" >"$work/protoc-gen-validate/validate/validate.proto"
grep -q "ignore_empty = 26" "$work/protoc-gen-validate/validate/validate.proto" ||
  { echo "validate.proto changed shape; revisit proto/generate-envoy-xds.sh" >&2; exit 1; }

roots=(
  envoy/service/discovery/v3/ads.proto
  envoy/config/listener/v3/listener.proto
  envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto
  envoy/extensions/filters/http/router/v3/router.proto
  envoy/config/route/v3/route.proto
  envoy/config/cluster/v3/cluster.proto
  envoy/config/endpoint/v3/endpoint.proto
)
paths=()
for file in "${roots[@]}"; do paths+=(--path "envoy-api/$file"); done

cd "$work"
"$root/node_modules/.bin/buf" generate . \
  --config '{"version":"v2","modules":[{"path":"envoy-api"},{"path":"xds"},{"path":"googleapis"},{"path":"protoc-gen-validate"}]}' \
  --template "{\"version\":\"v2\",\"plugins\":[{\"local\":\"$root/node_modules/.bin/protoc-gen-es\",\"out\":\"gen\",\"include_imports\":true,\"opt\":[\"target=ts\",\"import_extension=js\"]}]}" \
  "${paths[@]}" -o "$work/out"
rm "$work/out/gen/google/rpc/status_pb.ts"
mkdir -p "$out/gen"
cp -r "$work/out/gen/." "$out/gen/"
