#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io when dockerd is
# missing, start dockerd when none runs (CI machines have neither), then wait
# until `docker info` answers. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[docker] %s\n' "$*" >&2; }

command -v dockerd >/dev/null || bash "$ROOT/tools/install-node-packages.sh"
if docker info >/dev/null 2>&1; then
  exit 0
fi
LOG="${RAP_DOCKERD_LOG:-/var/log/rap-dockerd.log}"
log "starting dockerd (log: $LOG)"
# setsid + nohup: the engine outlives this script and the make that ran it.
setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
deadline=$((SECONDS + 60))
until docker info >/dev/null 2>&1; do
  if ((SECONDS > deadline)); then
    log "dockerd did not answer within 60 s; last log lines:"
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  sleep 0.5
done
log "dockerd is up ($(docker version --format '{{.Server.Version}}'))"
