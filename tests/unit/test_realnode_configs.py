"""The real node's configuration files and images, as pure functions (the node
itself runs in tests/node)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tomllib
from pathlib import Path

import yaml
from rap_devtools.realnode import configs, oci


def test_containerd_config_is_isolated_and_fits_these_machines(tmp_path: Path) -> None:
    paths = configs.NodePaths(tmp_path)
    conf = tomllib.loads(configs.containerd_config(paths))
    assert conf["grpc"]["address"] == str(paths.containerd_socket)
    assert conf["root"].startswith(str(tmp_path)) and conf["state"].startswith(str(tmp_path))
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE here
    assert cri["sandbox_image"] == configs.PAUSE_IMAGE
    assert cri["cni"]["conf_dir"] == str(paths.cni_conf_dir)
    options = cri["containerd"]["runtimes"]["runc"]["options"]
    assert options == {"SystemdCgroup": False, "Root": str(paths.runc_root)}


def test_pod_network_masquerades_and_keeps_its_state_in_the_node_dir(tmp_path: Path) -> None:
    net = json.loads(configs.cni_conflist(configs.NodePaths(tmp_path)))
    bridge = net["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is True
    assert bridge["ipam"]["ranges"] == [[{"subnet": configs.POD_CIDR}]]
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))


def test_kubelet_config_has_its_own_cgroup_root_and_cluster_dns(tmp_path: Path) -> None:
    conf = yaml.safe_load(configs.kubelet_config(
        configs.NodePaths(tmp_path), node_ip="10.201.0.6", ca_file=tmp_path / "ca.crt",
        max_pods=12, cgroup_root="/rapnode-42",
    ))  # fmt: skip
    assert conf["cgroupRoot"] == "/rapnode-42"
    assert conf["clusterDNS"] == [configs.CLUSTER_DNS_IP]
    assert conf["address"] == "10.201.0.6" and conf["maxPods"] == 12
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["containerRuntimeEndpoint"] == f"unix://{tmp_path}/containerd/containerd.sock"


def test_coredns_service_uses_the_cluster_dns_ip() -> None:
    docs = {d["kind"]: d for d in configs.coredns_manifests()}
    assert docs["Service"]["spec"]["clusterIP"] == configs.CLUSTER_DNS_IP
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Never"
    assert "kubernetes cluster.local" in docs["ConfigMap"]["data"]["Corefile"]


def test_single_binary_oci_archive(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF not really")
    archive = oci.write_single_binary_image(
        tmp_path / "img.tar", name="docker.io/x/pause:1", binary=binary,
        entrypoint=["/pause"], user="65535:65535",
    )  # fmt: skip
    with tarfile.open(archive) as tar:
        # the members are regular files: extractfile returns a file, not None
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        (desc,) = index["manifests"]
        assert desc["annotations"]["io.containerd.image.name"] == "docker.io/x/pause:1"

        def blob(digest: str) -> bytes:
            # the members are regular files: extractfile returns a file, not None
            data = tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # type: ignore[union-attr]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
            return data

        manifest = json.loads(blob(desc["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        assert config["config"]["Entrypoint"] == ["/pause"]
        assert config["config"]["User"] == "65535:65535"
        layer = blob(manifest["layers"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755
        # the members are regular files: extractfile returns a file, not None
        assert inner.extractfile(member).read() == binary.read_bytes()  # type: ignore[union-attr]
