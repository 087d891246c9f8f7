"""The kind cluster's pure parts: its config, the docker shim's rewriting of
kind's commands, and the node image's storage manifest (the cluster itself
runs in tests/node/test_kind_demo.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from rap_devtools import kind
from rap_devtools.cluster import REPO_ROOT

SHIM = REPO_ROOT / "tools" / "kind" / "shim" / "docker"


def test_kind_config_fits_an_offline_cgroup_v1_host() -> None:
    conf = kind.kind_config("c1", "img:v1")
    assert conf["name"] == "c1"
    assert conf["nodes"] == [{"role": "control-plane", "image": "img:v1"}]
    # kindnet's image cannot be pulled: the node image's bridge CNI instead.
    assert conf["networking"]["disableDefaultCNI"] is True
    (patch,) = [yaml.safe_load(p) for p in conf["kubeadmConfigPatches"]]
    assert patch == {"kind": "KubeletConfiguration", "failCgroupV1": False}


def test_kind_env_puts_the_shim_first_and_keeps_kubeconfig_local(tmp_path: Path) -> None:
    env = kind.kind_env(tmp_path / "bin", tmp_path / "kubeconfig")
    path = env["PATH"].split(os.pathsep)
    assert path[:2] == [str(kind.SHIM_DIR), str(tmp_path / "bin")]
    assert env["KUBECONFIG"] == str(tmp_path / "kubeconfig")
    assert str(kind.SHIM_DIR) not in kind.kind_env(tmp_path, tmp_path, shim=False)["PATH"]


def shim(tmp_path: Path, *args: str) -> list[str]:
    """What the shim passes on to "docker" (a script that prints its argv)."""
    real = tmp_path / "docker"
    real.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    real.chmod(0o755)
    out = subprocess.run([str(SHIM), *args], env={**os.environ, "RAP_KIND_REAL_DOCKER": str(real)},
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return out.splitlines()


def test_shim_replaces_privileged_on_run_with_all_caps_but_sys_resource(tmp_path: Path) -> None:
    got = shim(tmp_path, "run", "--name", "n", "--privileged", "--volume", "/var", "img")
    assert "--privileged" not in got
    assert got[0] == "run"
    assert got[1:8] == ["--cap-add=ALL", "--cap-drop=SYS_RESOURCE", "--security-opt",
                        "systempaths=unconfined", "--device-cgroup-rule=a *:* rwm",
                        "--device", "/dev/kmsg"]  # fmt: skip
    assert got[8:] == ["--name", "n", "--volume", "/var", "img"]


def test_shim_drops_privileged_on_exec_and_passes_the_rest_unchanged(tmp_path: Path) -> None:
    assert shim(tmp_path, "exec", "--privileged", "-i", "c", "ctr", "--privileged") == [
        "exec", "-i", "c", "ctr", "--privileged"]  # fmt: skip
    assert shim(tmp_path, "ps", "--privileged") == ["ps", "--privileged"]
    assert shim(tmp_path, "run", "img") == ["run", "img"]


def test_shim_drops_the_lib_modules_bind_only_where_the_host_has_none(tmp_path: Path) -> None:
    got = shim(tmp_path, "run", "--volume", "/lib/modules:/lib/modules:ro", "img")
    if Path("/lib/modules").is_dir():
        assert got == ["run", "--volume", "/lib/modules:/lib/modules:ro", "img"]
    else:
        assert got == ["run", "img"]


def test_default_storage_is_local_path_as_the_default_class_standard() -> None:
    text = (REPO_ROOT / "tools" / "kind" / "node" / "default-storage.yaml").read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    (sc,) = [d for d in docs if d["kind"] == "StorageClass"]
    assert sc["metadata"]["name"] == kind.STORAGE_CLASS
    assert sc["provisioner"] == kind.PROVISIONER
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    # Filled in by tools/build-kind-node-image.sh with images preloaded in the
    # node: never pulled.
    assert container["image"] == "__PROVISIONER_IMAGE__"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert "__HELPER_IMAGE__" in container["command"]
