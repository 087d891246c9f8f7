#!/usr/bin/env bash
# Build the Go binaries of the kind cluster into BIN_DIR (default bin), cached
# by their pins (see gobuild-lib.sh), from the wrapper modules in tools/kind/:
#   kind                    sigs.k8s.io/kind v0.33.0 (the CLI users run)
#   kubeadm                 v1.36.3: tools/node's pins + the kubeadm tool, so it
#                           is the same Kubernetes as the node and control plane
#                           (and the kubelet build's Go build cache is reused)
#   crictl                  cri-tools v1.37.0 (kind's node image carries it)
#   coredns-kind            CoreDNS with the plugins kubeadm's Corefile needs
#                           (bin/coredns stays the real node's smaller build)
#   local-path-provisioner  rancher's, the kind node's default StorageClass
# The node image itself: tools/build-kind-node-image.sh.
#
#   bash tools/build-kind.sh [BIN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SET=kind
BIN_DIR="${1:-bin}"
BINARIES=(kind kubeadm crictl coredns-kind local-path-provisioner)
KEY_FILES=()
for m in kind kubeadm crictl coredns local-path-provisioner; do
  KEY_FILES+=("$ROOT/tools/kind/$m/go.mod" "$ROOT/tools/kind/$m/go.sum")
done
KEY_FILES+=("$ROOT/tools/kind/coredns/main.go")
CACHE_ROOT="${RAP_KIND_CACHE:-}"
# shellcheck source=tools/gobuild-lib.sh
source "$ROOT/tools/gobuild-lib.sh"

build_all() {
  local m="$ROOT/tools/kind" v
  build "$m/kind" kind sigs.k8s.io/kind "-s -w"
  build "$m/kubeadm" kubeadm k8s.io/kubernetes/cmd/kubeadm "-s -w$(k8s_version_ldflags "$m/kubeadm")"
  v="$(mod_field "$m/crictl" sigs.k8s.io/cri-tools Version)"
  build "$m/crictl" crictl sigs.k8s.io/cri-tools/cmd/crictl \
    "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$v"
  build "$m/coredns" coredns-kind . "-s -w"
  v="$(mod_field "$m/local-path-provisioner" github.com/rancher/local-path-provisioner Version)"
  # main.VERSION is what its --version prints (upstream's Makefile stamps it too).
  build "$m/local-path-provisioner" local-path-provisioner github.com/rancher/local-path-provisioner \
    "-s -w -X main.VERSION=$v"
}

gobuild_main
