#!/usr/bin/env bash
# Debian packages the image build and the real node need: the Docker engine
# (docker.io brings containerd and runc), CNI plugins, debootstrap for the
# offline base image, iptables/conntrack for kube-proxy. Idempotent: a no-op
# when every package is installed.
set -euo pipefail
# redis-server and git: Argo CD in the GitOps test (its cache; the repo-server
# clones from a local `git daemon`).
PACKAGES=(docker.io containerd runc containernetworking-plugins debootstrap iptables conntrack
  redis-server git)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "[node-packages] all installed" >&2
  exit 0
fi
echo "[node-packages] installing ${missing[*]}" >&2
SUDO=""
[[ $(id -u) == 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: docker.io recommends apparmor, git, xz ... none needed.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
