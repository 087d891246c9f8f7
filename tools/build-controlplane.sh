#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager and kubectl from the Go
# modules pinned in tools/controlplane and tools/etcd into BIN_DIR.
#
#   bash tools/build-controlplane.sh [BIN_DIR]     (default: bin)
#
# Three levels, cheapest first:
#   1. BIN_DIR already holds binaries built from the current pins -> no-op.
#   2. A per-user cache outside the repo holds them (keyed by a hash of the
#      go.mod/go.sum files, this script and the Go version) -> copy them in.
#      CI runs on a fresh clone, so bin/ is always empty there; this cache is
#      what makes the second CI run on a machine take seconds.
#   3. Otherwise build them, one at a time (each link step wants a few GB of
#      memory), into the cache, then copy. Go's module and build caches make
#      a rebuild after a pin change incremental.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${1:-bin}"
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
CP_MOD="$ROOT/tools/controlplane"
ETCD_MOD="$ROOT/tools/etcd"
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)

log() { printf '[controlplane] %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not on PATH (need Go >= 1.26)"; exit 1; }

# Everything that decides the bytes of the binaries goes into the key.
KEY="$(
  {
    cat "$CP_MOD/go.mod" "$CP_MOD/go.sum" "$ETCD_MOD/go.mod" "$ETCD_MOD/go.sum" "$ETCD_MOD"/*.go
    cat "${BASH_SOURCE[0]}"
    go env GOVERSION GOOS GOARCH
  } | sha256sum | cut -c1-16
)"
CACHE_ROOT="${RAP_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rap-analyzer/controlplane}"
CACHE="$CACHE_ROOT/$KEY"
STAMP="$BIN_DIR/.controlplane-key"

have_all() { # have_all DIR: every binary present and executable
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$1/$b" ]] || return 1; done
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" ]] && have_all "$BIN_DIR"; then
  log "up to date ($BIN_DIR, key $KEY)"
  exit 0
fi

install_from_cache() {
  mkdir -p "$BIN_DIR"
  local b
  for b in "${BINARIES[@]}"; do
    # A hard link is free; fall back to a copy across filesystems. Remove the
    # target first so a running binary is never overwritten in place.
    rm -f "$BIN_DIR/$b"
    ln "$CACHE/$b" "$BIN_DIR/$b" 2>/dev/null || cp "$CACHE/$b" "$BIN_DIR/$b"
  done
  echo "$KEY" >"$STAMP"
  touch "$CACHE" # mtime = last use, for the pruning below
  log "installed into $BIN_DIR from $CACHE"
}

prune_cache() { # keep the 3 most recently used keys (~280 MB each)
  local old
  # shellcheck disable=SC2012  # names are hex keys, ls -t is fine
  for old in $(ls -1dt "$CACHE_ROOT"/*/ 2>/dev/null | grep -v '\.tmp\.' | tail -n +4); do
    log "pruning old build $old"
    rm -rf "$old"
  done
}

mkdir -p "$CACHE_ROOT"
# Serialise concurrent builds (two checkouts, CI and a developer) per key.
exec 9>"$CACHE_ROOT/$KEY.lock"
flock 9

if [[ -f "$CACHE/.complete" ]] && have_all "$CACHE"; then
  install_from_cache
  exit 0
fi

mod_field() { # mod_field MODDIR MODULE FIELD  (from go list -m)
  (cd "$1" && go list -m -f "{{.$3}}" "$2")
}

K8S_VERSION="$(mod_field "$CP_MOD" k8s.io/kubernetes Version)"              # v1.36.3
K8S_DATE="$(cd "$CP_MOD" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
K8S_MAJOR="$(echo "$K8S_VERSION" | sed -E 's/^v([0-9]+)\..*/\1/')"
K8S_MINOR="$(echo "$K8S_VERSION" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')"
# The variables Kubernetes' hack/lib/version.sh sets, so `kubectl version`
# and /version report a real release (admission and discovery look at it).
VERSION_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  VERSION_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$K8S_MAJOR"
  VERSION_LDFLAGS+=" -X $pkg.gitMinor=$K8S_MINOR -X $pkg.gitTreeState=clean"
  VERSION_LDFLAGS+=" -X $pkg.buildDate=$K8S_DATE -X $pkg.gitCommit="
done

STAGE="$CACHE.tmp.$$"
trap 'rm -rf "$STAGE"' EXIT
rm -rf "$STAGE" && mkdir -p "$STAGE"

# GOFLAGS is replaced, not extended: the bytes must depend on the key only.
# -buildvcs=false: etcd's main package lives in this git repo; stamping it
# would make the binary depend on the checkout state (and fail without git).
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
build() { # build MODDIR OUTPUT PACKAGE LDFLAGS
  local start=$SECONDS
  log "building $2 ($3)"
  (cd "$1" && go build -ldflags "$4" -o "$STAGE/$2" "$3")
  log "built $2 in $((SECONDS - start))s ($(du -h "$STAGE/$2" | cut -f1))"
}

total_start=$SECONDS
log "building into $CACHE (Kubernetes $K8S_VERSION; a cold build downloads ~1 GB of modules)"
build "$ETCD_MOD" etcd . "-s -w"
for b in kube-apiserver kube-controller-manager kubectl; do
  build "$CP_MOD" "$b" "k8s.io/kubernetes/cmd/$b" "-s -w$VERSION_LDFLAGS"
done

rm -rf "$CACHE"
mv "$STAGE" "$CACHE"
touch "$CACHE/.complete"
log "all built in $((SECONDS - total_start))s"
install_from_cache
prune_cache
