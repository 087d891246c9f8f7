#!/usr/bin/env bash
# Build the helm binary (helm.sh/helm/v3/cmd/helm, pinned in tools/helm) into
# BIN_DIR. The chart tests (tests/unit/test_chart.py) run `helm lint` and
# `helm template` with it.
#
#   bash tools/build-helm.sh [BIN_DIR]     (default: bin)
#
# Three levels, cheapest first (the same scheme as tools/build-controlplane.sh):
#   1. BIN_DIR/helm was built from the current pins -> no-op.
#   2. A per-user cache outside the repo holds it (keyed by a hash of
#      tools/helm/go.mod, go.sum, this script and the Go version) -> link it in.
#      A fresh clone on the same machine (CI) takes a second instead of minutes.
#   3. Otherwise build it into the cache, then link it in. Go's module and
#      build caches make a rebuild after a pin change incremental.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${1:-bin}"
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
HELM_MOD="$ROOT/tools/helm"

log() { printf '[helm] %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not on PATH (need Go >= 1.26)"; exit 1; }

# Everything that decides the bytes of the binary goes into the key.
KEY="$(
  {
    cat "$HELM_MOD/go.mod" "$HELM_MOD/go.sum" "$HELM_MOD"/*.go
    cat "${BASH_SOURCE[0]}"
    go env GOVERSION GOOS GOARCH
  } | sha256sum | cut -c1-16
)"
CACHE_ROOT="${RAP_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rap-analyzer/helm}"
CACHE="$CACHE_ROOT/$KEY"
STAMP="$BIN_DIR/.helm-key"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" && -x "$BIN_DIR/helm" ]]; then
  log "up to date ($BIN_DIR/helm, key $KEY)"
  exit 0
fi

install_from_cache() {
  mkdir -p "$BIN_DIR"
  # A hard link is free; fall back to a copy across filesystems. Remove the
  # target first so a running binary is never overwritten in place.
  rm -f "$BIN_DIR/helm"
  ln "$CACHE/helm" "$BIN_DIR/helm" 2>/dev/null || cp "$CACHE/helm" "$BIN_DIR/helm"
  echo "$KEY" >"$STAMP"
  log "installed $BIN_DIR/helm from $CACHE"
}

mkdir -p "$CACHE_ROOT"
# Serialise concurrent builds (two checkouts, CI and a developer) per key.
exec 9>"$CACHE_ROOT/$KEY.lock"
flock 9

if [[ -f "$CACHE/.complete" && -x "$CACHE/helm" ]]; then
  install_from_cache
  exit 0
fi

mod_version() { # mod_version MODULE  (as resolved by tools/helm/go.mod)
  (cd "$HELM_MOD" && go list -m -f '{{.Version}}' "$1")
}

HELM_VERSION="$(mod_version helm.sh/helm/v3)"   # v3.22.0
# Helm's own Makefile derives the Kubernetes version it reports to charts
# (.Capabilities.KubeVersion) and lints against from client-go: v0.X.Y -> 1.X.
CLIENT_GO="$(mod_version k8s.io/client-go)"
K8S_MAJOR="$(($(echo "$CLIENT_GO" | sed -E 's/^v([0-9]+)\..*/\1/') + 1))"
K8S_MINOR="$(echo "$CLIENT_GO" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')"
LDFLAGS="-s -w"
LDFLAGS+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
LDFLAGS+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  LDFLAGS+=" -X $pkg.k8sVersionMajor=$K8S_MAJOR -X $pkg.k8sVersionMinor=$K8S_MINOR"
done

STAGE="$CACHE.tmp.$$"
trap 'rm -rf "$STAGE"' EXIT
rm -rf "$STAGE" && mkdir -p "$STAGE"

start=$SECONDS
log "building helm $HELM_VERSION into $CACHE (Kubernetes $K8S_MAJOR.$K8S_MINOR)"
export CGO_ENABLED=0 GOFLAGS="-mod=readonly"
(cd "$HELM_MOD" && go build -trimpath -ldflags "$LDFLAGS" -o "$STAGE/helm" helm.sh/helm/v3/cmd/helm)
log "built helm in $((SECONDS - start))s ($(du -h "$STAGE/helm" | cut -f1))"

rm -rf "$CACHE"
mv "$STAGE" "$CACHE"
touch "$CACHE/.complete"
install_from_cache
