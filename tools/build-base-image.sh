#!/usr/bin/env bash
# The offline stand-in for python:3.11-slim: a Debian bookworm minbase rootfs
# with Debian's Python 3.11 (debootstrap, from the host's apt mirror), made to
# behave like the official image (pip may install outside a venv, `python` on
# PATH, no apt lists), imported into the local Docker engine under TAG.
#
#   bash tools/build-base-image.sh [TAG]        (default python:3.11-slim)
#   FORCE=1 ...                                  rebuild even when TAG exists
#
# The rootfs tarball is cached in ${XDG_CACHE_HOME:-~/.cache}/rap-analyzer/base-image/
# keyed by this script's hash + the apt mirror/snapshot line: a second run (or
# another machine with the same cache) only imports it (seconds).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="${1:-${BASE_IMAGE:-python:3.11-slim}}"
SUITE=bookworm
log() { printf '[base-image] %s\n' "$*" >&2; }

bash "$ROOT/tools/ensure-docker.sh"
if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG exists (FORCE=1 rebuilds it)"
  exit 0
fi

# shellcheck source=tools/debian-mirror-lib.sh
source "$ROOT/tools/debian-mirror-lib.sh"
KEY="$( { sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1; echo "$SUITE $MIRROR $LINE"; } | sha256sum | cut -c1-16)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/rap-analyzer/base-image"
TARBALL="$CACHE/$KEY.tar"
mkdir -p "$CACHE"

if [[ ! -s "$TARBALL" ]]; then
  command -v debootstrap >/dev/null || bash "$ROOT/tools/install-node-packages.sh"
  DIR="$(mktemp -d /var/tmp/rap-base.XXXXXX)"
  trap 'rm -rf "$DIR"' EXIT
  log "debootstrap $SUITE from $MIRROR into $DIR (about 3 min)"
  start=$SECONDS
  debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$DIR" "$MIRROR" >"$DIR.log" 2>&1 || {
    tail -n 30 "$DIR.log" >&2
    exit 1
  }
  rm -f "$DIR.log"
  # Behave like python:3.11-slim: pip may install into the system Python.
  rm -f "$DIR"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Small: no apt lists, caches, docs, man pages, locales, bytecode caches.
  rm -rf "$DIR"/var/lib/apt/lists/* "$DIR"/var/cache/apt/* "$DIR"/var/cache/debconf/*-old \
    "$DIR"/var/log/* "$DIR"/usr/share/doc/* "$DIR"/usr/share/man/* "$DIR"/usr/share/info/* \
    "$DIR"/tmp/* "$DIR"/root/.cache
  find "$DIR"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
  find "$DIR"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +
  # The host's resolver and hostname are Docker's business at run time.
  : >"$DIR/etc/resolv.conf"
  : >"$DIR/etc/hostname"
  tar --numeric-owner -C "$DIR" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  log "rootfs built in $((SECONDS - start)) s, cached as $TARBALL"
else
  log "using the cached rootfs $TARBALL"
fi

docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "Debian $SUITE + python3 (debootstrap; stand-in for python:3.11-slim)" \
  "$TARBALL" "$TAG" >/dev/null
log "imported $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%d MB", $1/1e6}'))"
