#!/usr/bin/env bash
# Build Kueue's controller manager `kueue` into BIN_DIR (default bin), cached by
# its pin (see gobuild-lib.sh) from tools/kueue (a `tool sigs.k8s.io/kueue/cmd/kueue`
# line; v0.17.0 has no replace block). Also renders kueue-manifests.yaml: what
# upstream publishes as the release's manifests.yaml, made offline from the same
# module with `kubectl kustomize <module>/config/default` (the project's kubectl,
# so `make controlplane` first). rap_devtools.kueue adapts it for the kind tests.
# A cold build takes ~5 minutes on 2 cores.
#
#   bash tools/build-kueue.sh [BIN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SET=kueue
BIN_DIR="${1:-bin}"
# The manifests are cached with the binary so no module cache is needed later.
BINARIES=(kueue kueue-manifests.yaml)
# kubectl's pins are in the key: its embedded kustomize renders the manifests.
KEY_FILES=(
  "$ROOT"/tools/kueue/go.mod "$ROOT"/tools/kueue/go.sum
  "$ROOT"/tools/controlplane/go.mod "$ROOT"/tools/controlplane/go.sum
)
CACHE_ROOT="${RAP_KUEUE_CACHE:-}"
# shellcheck source=tools/gobuild-lib.sh
source "$ROOT/tools/gobuild-lib.sh"

build_all() {
  local version date dir pkg=sigs.k8s.io/kueue/pkg/version
  version="$(mod_field "$ROOT/tools/kueue" sigs.k8s.io/kueue Version)"
  date="$(cd "$ROOT/tools/kueue" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' sigs.k8s.io/kueue)"
  # What Kueue's Makefile stamps, so the manager logs the pinned release (the
  # commit is not in the module's metadata; left empty). The date is the
  # release's, so the bytes depend on the pin only.
  build "$ROOT/tools/kueue" kueue sigs.k8s.io/kueue/cmd/kueue \
    "-s -w -X $pkg.GitVersion=$version -X $pkg.BuildDate=$date -X $pkg.GitCommit="
  [[ -x "$BIN_DIR/kubectl" ]] || { log "$BIN_DIR/kubectl missing: run make controlplane"; exit 1; }
  dir="$(mod_field "$ROOT/tools/kueue" sigs.k8s.io/kueue Dir)"
  "$BIN_DIR/kubectl" kustomize "$dir/config/default" >"$STAGE/kueue-manifests.yaml"
  chmod +x "$STAGE/kueue-manifests.yaml" # gobuild-lib's have_all wants every file executable
}

gobuild_main
