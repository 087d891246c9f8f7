# Shared by build-controlplane.sh and build-node.sh: build a set of Go binaries
# into a per-user cache keyed by their pins, then link them into BIN_DIR.
#
# The caller sets SET (a name), BIN_DIR, BINARIES (names), KEY_FILES (every
# file that decides the bytes), and defines build_all (builds each binary into
# $STAGE with the `build` helper). Then it calls gobuild_main.
#
# Three levels, cheapest first:
#   1. BIN_DIR already holds binaries built from the current pins -> no-op.
#   2. The cache holds them (key = hash of KEY_FILES, the scripts and the Go
#      version) -> link them in. CI runs on a fresh clone, so bin/ is always
#      empty there; this cache is what makes a second CI run take seconds.
#   3. Otherwise build them, one at a time (each link step wants a few GB of
#      memory), into the cache, then link. Go's module and build caches make
#      a rebuild after a pin change incremental.

log() { printf '[%s] %s\n' "$SET" "$*" >&2; }

have_all() { # have_all DIR: every binary present and executable
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$1/$b" ]] || return 1; done
}

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

prune_cache() { # keep the 3 most recently used keys
  local old
  # shellcheck disable=SC2012  # names are hex keys, ls -t is fine
  for old in $(ls -1dt "$CACHE_ROOT"/*/ 2>/dev/null | grep -v '\.tmp\.' | tail -n +4); do
    log "pruning old build $old"
    rm -rf "$old"
  done
}

build() { # build MODDIR OUTPUT PACKAGE LDFLAGS
  local start=$SECONDS
  log "building $2 ($3)"
  (cd "$1" && go build -ldflags "$4" -o "$STAGE/$2" "$3")
  log "built $2 in $((SECONDS - start))s ($(du -h "$STAGE/$2" | cut -f1))"
}

mod_field() { # mod_field MODDIR MODULE FIELD  (from go list -m)
  (cd "$1" && go list -m -f "{{.$3}}" "$2")
}

k8s_version_ldflags() { # k8s_version_ldflags MODDIR: Kubernetes' version -X flags
  local version date major minor pkg flags=""
  version="$(mod_field "$1" k8s.io/kubernetes Version)"
  date="$(cd "$1" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
  major="$(echo "$version" | sed -E 's/^v([0-9]+)\..*/\1/')"
  minor="$(echo "$version" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')"
  # The variables Kubernetes' hack/lib/version.sh sets, so `kubectl version`,
  # /version and the Node's kubeletVersion report a real release.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major"
    flags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    flags+=" -X $pkg.buildDate=$date -X $pkg.gitCommit="
  done
  echo "$flags"
}

gobuild_main() {
  command -v go >/dev/null || { log "go is not on PATH (need Go >= 1.26)"; exit 1; }
  case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
  KEY="$(
    {
      cat "${KEY_FILES[@]}" "$ROOT/tools/gobuild-lib.sh" "$0"
      go env GOVERSION GOOS GOARCH
    } | sha256sum | cut -c1-16
  )"
  CACHE_ROOT="${CACHE_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/rap-analyzer/$SET}"
  CACHE="$CACHE_ROOT/$KEY"
  STAMP="$BIN_DIR/.$SET-key"

  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" ]] && have_all "$BIN_DIR"; then
    log "up to date ($BIN_DIR, key $KEY)"
    return 0
  fi
  mkdir -p "$CACHE_ROOT"
  # Serialise concurrent builds (two checkouts, CI and a developer) per key.
  exec 9>"$CACHE_ROOT/$KEY.lock"
  flock 9
  if [[ -f "$CACHE/.complete" ]] && have_all "$CACHE"; then
    install_from_cache
    return 0
  fi
  STAGE="$CACHE.tmp.$$"
  trap 'rm -rf "$STAGE"' EXIT
  rm -rf "$STAGE" && mkdir -p "$STAGE"
  # GOFLAGS is replaced, not extended: the bytes must depend on the key only.
  # -buildvcs=false: main packages inside this git repo would otherwise be
  # stamped with the checkout state (and fail without git).
  export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
  local total_start=$SECONDS
  log "building into $CACHE (a cold build downloads modules; see tools/README.md)"
  build_all
  rm -rf "$CACHE"
  mv "$STAGE" "$CACHE"
  touch "$CACHE/.complete"
  log "all built in $((SECONDS - total_start))s"
  install_from_cache
  prune_cache
}
