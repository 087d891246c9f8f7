#!/usr/bin/env bash
# Build the kind node image IMAGE (default rap-analyzer-kind-node:<kubeadm's
# version>, v1.36.3) offline, from Debian packages and the binaries in BIN_DIR
# (make controlplane node kind). The same recipe as kind's own
# `kind build node-image`, which needs images from registries:
#   1. rootfs: Debian bookworm, debootstrap of tools/kind/node/rootfs-packages.txt
#      from the host's apt mirror; the tarball is cached under
#      ~/.cache/rap-analyzer/kind-rootfs/ keyed by that list and the mirror.
#   2. the images kubeadm pulls (`kubeadm config images list`), under its
#      exact names, from our binaries; plus local-path-provisioner and its
#      helper (kind's default StorageClass `standard`).
#   3. node base: rootfs + kind's images/base/files (taken from the kind
#      module that tools/kind/kind pins, so they always match bin/kind) +
#      tools/kind/node/overlay + kubeadm, kubelet, kubectl, crictl.
#   4. preload: the images of 2 imported into the node's containerd (content
#      only, as kind does), committed as IMAGE.
# IMAGE carries the label rap-analyzer.kind-node.key, a hash of every input;
# when IMAGE exists with the same key nothing is rebuilt (FORCE=1 rebuilds).
#
#   bash tools/build-kind-node-image.sh [BIN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-bin}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
NODE_SRC="$ROOT/tools/kind/node"
WORK="$ROOT/build/kind"
SUITE=bookworm
LABEL=rap-analyzer.kind-node.key
log() { printf '[kind-node-image] %s\n' "$*" >&2; }
export DOCKER_BUILDKIT=0 # no buildx here: the legacy builder
# docker build -q, its output (the legacy builder's deprecation notice) shown
# only when it fails.
dbuild() {
  local out
  out="$(docker build -q "$@" 2>&1)" || { printf '%s\n' "$out" >&2; return 1; }
}

bash "$ROOT/tools/ensure-docker.sh"
for b in kubeadm kubelet kubectl crictl kube-apiserver kube-controller-manager kube-scheduler \
  kube-proxy etcd coredns-kind pause local-path-provisioner; do
  [[ -x "$BIN/$b" ]] || { log "$BIN/$b is missing (make controlplane node kind)"; exit 1; }
done
K8S_VERSION="$("$BIN/kubeadm" version -o short)"
IMAGE="${IMAGE:-rap-analyzer-kind-node:$K8S_VERSION}"
LPP_VERSION="$("$BIN/local-path-provisioner" --version | awk '{print $NF}')"
PROVISIONER_IMAGE="rap-analyzer/kind-local-path-provisioner:$LPP_VERSION"
HELPER_IMAGE="rap-analyzer/kind-local-path-helper:$SUITE"

# --- 1. rootfs --------------------------------------------------------------
# shellcheck source=tools/debian-mirror-lib.sh
source "$ROOT/tools/debian-mirror-lib.sh"
PACKAGES="$(grep -v '^#' "$NODE_SRC/rootfs-packages.txt" | grep -v '^$' | paste -sd, -)"
ROOTFS_KEY="$(echo "rootfs-v1 $SUITE $MIRROR $LINE $PACKAGES" | sha256sum | cut -c1-16)"
ROOTFS_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/rap-analyzer/kind-rootfs"
TARBALL="$ROOTFS_CACHE/$ROOTFS_KEY.tar"
ROOTFS_IMAGE="rap-analyzer-kind-rootfs:$ROOTFS_KEY"

# --- the content key of IMAGE ------------------------------------------------
KIND_FILES="$(cd "$ROOT/tools/kind/kind" && go mod download sigs.k8s.io/kind &&
  go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files"
[[ -d "$KIND_FILES" ]] || { log "no $KIND_FILES"; exit 1; }
KEY="$(
  {
    echo "$ROOTFS_KEY $IMAGE $PROVISIONER_IMAGE $HELPER_IMAGE"
    sha256sum "${BASH_SOURCE[0]}"
    (cd "$NODE_SRC" && find . -type f | LC_ALL=C sort | xargs sha256sum)
    (cd "$KIND_FILES" && find . -type f | LC_ALL=C sort | xargs sha256sum)
    (cd "$BIN" && sha256sum kubeadm kubelet kubectl crictl kube-apiserver kube-controller-manager \
      kube-scheduler kube-proxy etcd coredns-kind pause local-path-provisioner)
  } | sha256sum | cut -c1-16
)"
if [[ "${FORCE:-0}" != 1 ]] &&
  [[ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" == "$KEY" ]]; then
  log "$IMAGE is up to date (key $KEY; FORCE=1 rebuilds it)"
  exit 0
fi
total_start=$SECONDS

if [[ ! -s "$TARBALL" ]]; then
  command -v debootstrap >/dev/null || bash "$ROOT/tools/install-node-packages.sh"
  mkdir -p "$ROOTFS_CACHE"
  DIR="$(mktemp -d /var/tmp/rap-kind-rootfs.XXXXXX)"
  trap 'rm -rf "$DIR" "$DIR.log"' EXIT
  log "debootstrap $SUITE from $MIRROR into $DIR (about 4 min)"
  start=$SECONDS
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$DIR" "$MIRROR" >"$DIR.log" 2>&1 || {
    tail -n 30 "$DIR.log" >&2
    exit 1
  }
  rm -rf "$DIR"/var/lib/apt/lists/* "$DIR"/var/cache/apt/* "$DIR"/usr/share/doc/* \
    "$DIR"/usr/share/man/* "$DIR"/tmp/*
  # Docker provides these at run time.
  : >"$DIR/etc/resolv.conf"
  : >"$DIR/etc/hostname"
  tar --numeric-owner -C "$DIR" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$DIR" "$DIR.log"
  trap - EXIT
  log "rootfs built in $((SECONDS - start)) s, cached as $TARBALL"
fi
if ! docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
    --message "Debian $SUITE rootfs of the kind node image ($NODE_SRC/rootfs-packages.txt)" \
    "$TARBALL" "$ROOTFS_IMAGE" >/dev/null
  log "imported $ROOTFS_IMAGE"
fi

# --- 2. the images the node preloads ----------------------------------------
start=$SECONDS
rm -rf "$WORK" && mkdir -p "$WORK/images"
IMAGES=()
image_ctx() { # image_ctx NAME BINARY [AS]: a build context holding one binary
  local d="$WORK/images/$1"
  mkdir -p "$d"
  cp "$BIN/$2" "$d/${3:-$2}"
  echo "$d"
}
for img in $("$BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION"); do
  name="${img##*/}" && name="${name%%:*}"
  case "$name" in
    kube-apiserver | kube-controller-manager | kube-scheduler | etcd)
      ctx="$(image_ctx "$name" "$name")" && df=Dockerfile.static ;;
    kube-proxy) ctx="$(image_ctx "$name" "$name")" && df=Dockerfile.kube-proxy ;;
    coredns) ctx="$(image_ctx "$name" coredns-kind coredns)" && df=Dockerfile.coredns ;;
    pause) ctx="$(image_ctx "$name" pause)" && df=Dockerfile.pause ;;
    *) log "kubeadm lists an image this script cannot build: $img" && exit 1 ;;
  esac
  dbuild --build-arg "BIN=$name" --build-arg "ROOTFS=$ROOTFS_IMAGE" \
    -f "$NODE_SRC/images/$df" -t "$img" "$ctx"
  IMAGES+=("$img")
done
ctx="$(image_ctx local-path-provisioner local-path-provisioner)"
dbuild -f "$NODE_SRC/images/Dockerfile.local-path-provisioner" -t "$PROVISIONER_IMAGE" "$ctx"
# The provisioner's helper pods run `sh` with mkdir/rm: the rootfs has them,
# and its layer is already in the node for kube-proxy, so it costs nothing.
docker tag "$ROOTFS_IMAGE" "$HELPER_IMAGE"
IMAGES+=("$PROVISIONER_IMAGE" "$HELPER_IMAGE")
log "built ${#IMAGES[@]} images in $((SECONDS - start)) s: ${IMAGES[*]}"

# --- 3. node base ------------------------------------------------------------
start=$SECONDS
NCTX="$WORK/node"
mkdir -p "$NCTX/bin" "$NCTX/overlay/kind/manifests"
cp -r "$KIND_FILES" "$NCTX/files"
chmod -R u+w "$NCTX/files" # the module cache is read-only
# fuse-overlayfs is not installed; kind's config.toml is replaced by the overlay's.
rm -f "$NCTX/files/etc/systemd/system/containerd-fuse-overlayfs.service"
cp -r "$NODE_SRC/overlay/." "$NCTX/overlay/"
printf '%s' "$K8S_VERSION" >"$NCTX/overlay/kind/version"
sed -e "s#__PROVISIONER_IMAGE__#$PROVISIONER_IMAGE#g" -e "s#__HELPER_IMAGE__#$HELPER_IMAGE#g" \
  "$NODE_SRC/default-storage.yaml" >"$NCTX/overlay/kind/manifests/default-storage.yaml"
for b in kubeadm kubelet kubectl crictl; do cp "$BIN/$b" "$NCTX/bin/"; done
dbuild --build-arg "ROOTFS=$ROOTFS_IMAGE" -f "$NODE_SRC/Dockerfile" \
  -t "${IMAGE%%:*}-base:$K8S_VERSION" "$NCTX"
log "node base built in $((SECONDS - start)) s"

# --- 4. preload and commit -------------------------------------------------------
# kind's own recipe (pkg/build/nodeimage): run the base, import the images into
# containerd's k8s.io namespace without unpacking (containerd's CRI unpacks on
# first use), stop containerd, commit. kind runs the node with `--volume /var`,
# which Docker seeds from the image's /var. --init: the stopped containerd is
# reaped (under a bare sleep it stays a zombie and the wait below never ends).
start=$SECONDS
cid="$(docker run -d --init --entrypoint=sleep "${IMAGE%%:*}-base:$K8S_VERSION" infinity)"
trap 'docker rm -f -v "$cid" >/dev/null' EXIT
docker exec "$cid" bash -c '
  containerd >/tmp/containerd.log 2>&1 & echo $! >/tmp/containerd.pid
  for i in $(seq 1 60); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.5; done
  cat /tmp/containerd.log >&2; exit 1'
docker save "${IMAGES[@]}" |
  docker exec -i "$cid" ctr --namespace=k8s.io images import --all-platforms --no-unpack --digests - >/dev/null
docker exec "$cid" bash -c '
  kill $(cat /tmp/containerd.pid); while kill -0 $(cat /tmp/containerd.pid) 2>/dev/null; do sleep 0.2; done
  rm -rf /run/containerd /tmp/* /var/lib/containerd/io.containerd.snapshotter.v1.*/snapshots/*'
docker commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/kindnode-pre-entrypoint", "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change 'CMD []' --change "LABEL $LABEL=$KEY" \
  "$cid" "$IMAGE" >/dev/null
log "preloaded ${#IMAGES[@]} images and committed in $((SECONDS - start)) s"
rm -rf "$WORK" # build contexts only (copies of the binaries, ~700 MB)
log "$IMAGE built in $((SECONDS - total_start)) s (key $KEY, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
