#!/usr/bin/env bash
# Build the real node's Go binaries into BIN_DIR (default bin), cached by pins
# (see gobuild-lib.sh): kubelet, kube-scheduler and kube-proxy from
# tools/node (the control plane's Kubernetes pins), CoreDNS from
# tools/coredns, and the pod sandbox's pause process from tools/pause.
#
#   bash tools/build-node.sh [BIN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SET=node
BIN_DIR="${1:-bin}"
BINARIES=(kubelet kube-scheduler kube-proxy coredns pause)
KEY_FILES=(
  "$ROOT"/tools/node/go.mod "$ROOT"/tools/node/go.sum
  "$ROOT"/tools/coredns/go.mod "$ROOT"/tools/coredns/go.sum "$ROOT"/tools/coredns/main.go
  "$ROOT"/tools/pause/go.mod "$ROOT"/tools/pause/main.go
)
CACHE_ROOT="${RAP_NODE_CACHE:-}"
# shellcheck source=tools/gobuild-lib.sh
source "$ROOT/tools/gobuild-lib.sh"

build_all() {
  local flags b
  flags="$(k8s_version_ldflags "$ROOT/tools/node")"
  for b in kubelet kube-scheduler kube-proxy; do
    build "$ROOT/tools/node" "$b" "k8s.io/kubernetes/cmd/$b" "-s -w$flags"
  done
  build "$ROOT/tools/coredns" coredns . "-s -w"
  build "$ROOT/tools/pause" pause . "-s -w"
}

gobuild_main
