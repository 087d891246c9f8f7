#!/usr/bin/env bash
# Build the project's images (`make image`: the operator and the worker image, the
# Dockerfile's two targets) or the chart's Postgres image (`make postgres-image`,
# --postgres) with the local Docker engine.
#
#   IMAGE=rap-analyzer:dev OPERATOR_IMAGE=rap-analyzer-operator:dev \
#     BASE_IMAGE=python:3.11-slim bash tools/build-image.sh [--operator | --worker]
#   POSTGRES_IMAGE=rap-analyzer-postgres:16-pgvector bash tools/build-image.sh --postgres
#
# - No option: both app images, the operator first (its stages come first in the
#   Dockerfile, and the classic builder runs every stage before the target, so the
#   worker build then finds them cached). --operator / --worker: that one only.
# - Starts a Docker engine when none answers (tools/ensure-docker.sh installs
#   Debian's docker.io where it is missing).
# - BASE_IMAGE missing locally: one `docker pull` with a short timeout; where no
#   registry answers (these machines), tools/build-base-image.sh builds the
#   Debian stand-in under that tag (the offline path, `make base-image`).
# - pip inside the build trusts the host's CA bundle ($PIP_CERT, else the system
#   bundle) and honours PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_FIND_LINKS: they
#   go to the build stages only (build/docker/ in the context, build args), never
#   into a final image.
# - Prints each image's size and its size over the base; writes the same as JSON
#   to build/image-size.json (the worker), build/operator-image-size.json and
#   build/postgres-image-size.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[image] %s\n' "$*" >&2; }

KIND=app
TARGETS=(operator worker)
case "${1:-}" in
  --postgres) KIND=postgres ;;
  --operator) TARGETS=(operator) ;;
  --worker) TARGETS=(worker) ;;
  "") ;;
  *) echo "usage: $0 [--operator | --worker | --postgres]" >&2; exit 2 ;;
esac
BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}"
IMAGE="${IMAGE:-rap-analyzer:dev}"
OPERATOR_IMAGE="${OPERATOR_IMAGE:-rap-analyzer-operator:dev}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-rap-analyzer-postgres:16-pgvector}"

bash tools/ensure-docker.sh

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE is not present; trying docker pull (${PULL_TIMEOUT:-20} s)"
  if timeout "${PULL_TIMEOUT:-20}" docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    log "pulled $BASE_IMAGE"
  else
    log "no registry answered: building the offline stand-in $BASE_IMAGE (tools/build-base-image.sh)"
    bash tools/build-base-image.sh "$BASE_IMAGE"
  fi
fi

# What pip needs inside the build stage: the CA bundle and local find-links wheels.
stage_pip() {
  local dir="$1" cert="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" link
  rm -rf "$dir"
  mkdir -p "$dir/wheels"
  if [[ -r "$cert" ]]; then cp "$cert" "$dir/ca.crt"; else : >"$dir/ca.crt"; fi
  FIND_LINK_URLS=""
  for link in ${PIP_FIND_LINKS:-}; do
    if [[ -d "$link" ]]; then
      find "$link" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) \
        -exec cp {} "$dir/wheels/" \;
    elif [[ "$link" == *://* ]]; then
      FIND_LINK_URLS="${FIND_LINK_URLS:+$FIND_LINK_URLS }$link"
    fi
  done
}

BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[[ -n "${PIP_INDEX_URL:-}" ]] && BUILD_ARGS+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
[[ -n "${PIP_EXTRA_INDEX_URL:-}" ]] && BUILD_ARGS+=(--build-arg "PIP_EXTRA_INDEX_URL=$PIP_EXTRA_INDEX_URL")

if [[ $KIND == app ]]; then
  CONTEXT="$ROOT"
  DOCKERFILE="$ROOT/Dockerfile"
  stage_pip "$ROOT/build/docker"
else
  # A small context of its own: the Dockerfile, the entrypoint, pip's settings.
  CONTEXT="$ROOT/build/postgres-context"
  rm -rf "$CONTEXT"
  mkdir -p "$CONTEXT"
  cp tools/images/postgres/* "$CONTEXT/"
  DOCKERFILE="$CONTEXT/Dockerfile"
  stage_pip "$CONTEXT/docker"
fi
[[ -n "$FIND_LINK_URLS" ]] && BUILD_ARGS+=(--build-arg "PIP_FIND_LINKS=$FIND_LINK_URLS")

# build IMAGE TARGET REPORT: one `docker build`, then its size report.
build() {
  local image="$1" target="$2" report="$3" start seconds size base
  log "docker build -t $image${target:+ --target $target} (FROM $BASE_IMAGE)"
  start=$SECONDS
  # The classic builder: BuildKit may try to resolve FROM images in a registry.
  DOCKER_BUILDKIT=0 docker build --network host -q -t "$image" -f "$DOCKERFILE" \
    ${target:+--target "$target"} "${BUILD_ARGS[@]}" "$CONTEXT" >/dev/null
  seconds=$((SECONDS - start))
  size=$(docker image inspect -f '{{.Size}}' "$image")
  base=$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE")
  mkdir -p build
  python3 - "$image" "$size" "$BASE_IMAGE" "$base" "$seconds" "$report" <<'EOF'
import json, sys
image, size, base_image, base, seconds, report = sys.argv[1:]
size, base = int(size), int(base)
mb = lambda n: round(n / 1e6)
print(f"{image}: {mb(size)} MB, {mb(size - base)} MB over {base_image} ({mb(base)} MB); built in {seconds} s")
with open(report, "w") as f:
    json.dump({"image": image, "size_bytes": size, "size_mb": mb(size),
               "base_image": base_image, "base_size_bytes": base, "base_size_mb": mb(base),
               "over_base_bytes": size - base, "over_base_mb": mb(size - base),
               "build_seconds": int(seconds)}, f, indent=2)
    f.write("\n")
EOF
}

if [[ $KIND == postgres ]]; then
  build "$POSTGRES_IMAGE" "" build/postgres-image-size.json
  exit 0
fi
for target in "${TARGETS[@]}"; do
  case $target in
    operator) build "$OPERATOR_IMAGE" operator build/operator-image-size.json ;;
    worker) build "$IMAGE" worker build/image-size.json ;;
  esac
done
