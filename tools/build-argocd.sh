#!/usr/bin/env bash
# Build Argo CD's multi-call binary `argocd` into BIN_DIR (default bin), cached
# by its pin (see gobuild-lib.sh) from tools/argocd (github.com/argoproj/argo-cd/v3,
# with Argo CD's own replace block). Used offline by tests/gitops to evaluate the
# Lua health checks in deploy/argocd with Argo CD's own Lua engine:
#   bin/argocd admin settings resource-overrides health RES.yaml --argocd-cm-path CM.yaml
# A cold build takes ~10 minutes on 2 cores (the binary is a few hundred MB).
#
#   bash tools/build-argocd.sh [BIN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SET=argocd
BIN_DIR="${1:-bin}"
# argocd-crds.yaml: Argo CD's CRDs from the same module (manifests/crds), for the
# GitOps test to install; cached with the binary so no module cache is needed later.
BINARIES=(argocd argocd-crds.yaml)
KEY_FILES=(
  "$ROOT"/tools/argocd/go.mod "$ROOT"/tools/argocd/go.sum "$ROOT"/tools/argocd/tools.go
)
CACHE_ROOT="${RAP_ARGOCD_CACHE:-}"
# shellcheck source=tools/gobuild-lib.sh
source "$ROOT/tools/gobuild-lib.sh"

build_all() {
  local version pkg=github.com/argoproj/argo-cd/v3/common
  version="$(mod_field "$ROOT/tools/argocd" github.com/argoproj/argo-cd/v3 Version)"
  # What Argo CD's Makefile stamps, so `argocd version --client` reports the
  # pinned release instead of 99.99.99.
  build "$ROOT/tools/argocd" argocd github.com/argoproj/argo-cd/v3/cmd \
    "-s -w -X $pkg.version=${version#v} -X $pkg.gitTag=$version -X $pkg.gitTreeState=clean"
  local dir f
  dir="$(mod_field "$ROOT/tools/argocd" github.com/argoproj/argo-cd/v3 Dir)"
  for f in application-crd.yaml applicationset-crd.yaml appproject-crd.yaml; do
    cat "$dir/manifests/crds/$f"
    echo "---"
  done >"$STAGE/argocd-crds.yaml"
  chmod +x "$STAGE/argocd-crds.yaml" # gobuild-lib's have_all wants every file executable
}

gobuild_main
