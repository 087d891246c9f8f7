#!/usr/bin/env bash
# Build the Kueue image (default rap-analyzer-kueue:v0.17.0) from bin/kueue
# (tools/build-kueue.sh): FROM scratch with the static binary at /manager, run
# as 65532:65532, as upstream's Dockerfile does (its base, distroless/static,
# adds only CA certificates and passwd entries, which the manager never reads).
# No registry is needed. Skipped when the image already carries the binary's
# build key (label rap-analyzer.kueue-key = bin/.kueue-key).
#
#   KUEUE_IMAGE=rap-analyzer-kueue:v0.17.0 bash tools/build-kueue-image.sh [BIN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${1:-$ROOT/bin}"
IMAGE="${KUEUE_IMAGE:-rap-analyzer-kueue:v0.17.0}"
log() { printf '[kueue-image] %s\n' "$*" >&2; }

[[ -x "$BIN_DIR/kueue" && -f "$BIN_DIR/.kueue-key" ]] || { log "no $BIN_DIR/kueue: run make kueue"; exit 1; }
KEY="$(cat "$BIN_DIR/.kueue-key")"
bash "$ROOT/tools/ensure-docker.sh"
have="$(docker image inspect -f '{{index .Config.Labels "rap-analyzer.kueue-key"}}' "$IMAGE" 2>/dev/null || true)"
if [[ "$have" == "$KEY" ]]; then
  log "up to date ($IMAGE, key $KEY)"
  exit 0
fi
CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
cp "$BIN_DIR/kueue" "$CTX/manager"
cat >"$CTX/Dockerfile" <<DOCKERFILE
FROM scratch
COPY manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
DOCKERFILE
start=$SECONDS
docker build -q --label "rap-analyzer.kueue-key=$KEY" -t "$IMAGE" "$CTX" >/dev/null
log "built $IMAGE in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
