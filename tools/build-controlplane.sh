#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager and kubectl from the Go
# modules pinned in tools/controlplane and tools/etcd into BIN_DIR, cached by
# their pins (see gobuild-lib.sh).
#
#   bash tools/build-controlplane.sh [BIN_DIR]     (default: bin)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SET=controlplane
BIN_DIR="${1:-bin}"
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)
KEY_FILES=(
  "$ROOT"/tools/controlplane/go.mod "$ROOT"/tools/controlplane/go.sum
  "$ROOT"/tools/etcd/go.mod "$ROOT"/tools/etcd/go.sum "$ROOT"/tools/etcd/*.go
)
CACHE_ROOT="${RAP_CONTROLPLANE_CACHE:-}"
# shellcheck source=tools/gobuild-lib.sh
source "$ROOT/tools/gobuild-lib.sh"

build_all() {
  local flags b
  flags="$(k8s_version_ldflags "$ROOT/tools/controlplane")"
  build "$ROOT/tools/etcd" etcd . "-s -w"
  for b in kube-apiserver kube-controller-manager kubectl; do
    build "$ROOT/tools/controlplane" "$b" "k8s.io/kubernetes/cmd/$b" "-s -w$flags"
  done
}

gobuild_main
